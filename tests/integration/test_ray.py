"""`predict --ray` on a simulated two-node Ray cluster (two `ray start` nodes of one CPU each on
this machine, stopped whatever happens): the same outputs and exit code as the in-process run."""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).parent / "ray")
TOKEN = secrets.token_hex(32)
# The simulated cluster uses Ray's token auth with a token of its own. Ray reads the auth mode
# when it is imported, so the drivers this process runs (the study's) need it set first.
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)

pytest.importorskip("ray", reason="needs the ray extra")

from conftest import FER, TESTDATA, cli  # noqa: E402
from emotrace.testing import free_port, write_panning_video  # noqa: E402


def cluster_env() -> dict[str, str]:
    """The environment of the test session (its private caches and the cluster's token)."""
    return dict(os.environ)


def _running_processes() -> dict[int, tuple[int, str]]:
    """Every running process on this machine (zombies left out): pid -> (parent pid, command)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile
                continue
            if state != "Z":
                table[int(entry.name)] = int(parent), command
    return table


def stop_nodes(folders: list[Path]) -> None:
    """SIGKILL the processes of the Ray nodes whose temp folders are ``folders`` and everything
    they started, until none is left. Not ``ray stop``: it stops every Ray on the machine (a
    developer's own included) and waits 2 s per kind of process after killing it (7-8 s here)."""
    named = re.compile("|".join(re.escape(str(folder)) + r"(?=[/\s]|$)" for folder in folders))
    deadline = time.monotonic() + 30
    while True:
        table = _running_processes()
        doomed = {pid for pid, (_, command) in table.items() if named.search(command)}
        while more := {p for p, (parent, _) in table.items() if parent in doomed} - doomed:
            doomed |= more  # children and grandchildren ('ray::IDLE' workers name no folder)
        if not doomed:
            return
        assert time.monotonic() < deadline, f"Ray processes {doomed} alive 30 s after SIGKILL"
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node and a worker node, one CPU each, with their own temp folders, started from
    another folder than the driver's (as on a real cluster), and stopped whatever happens."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    # Ray's sockets live in its temp folder and a socket path has at most 107 bytes: pytest's
    # folders are too deep for it under pytest-xdist (.../pytest-N/popen-gw0/...)
    folders = [Path(tempfile.mkdtemp(prefix="ray-h")), Path(tempfile.mkdtemp(prefix="ray-w"))]
    elsewhere = tmp_path_factory.mktemp("node-folder")
    try:
        for command, folder in ((["--head", "--port", str(port), "--include-dashboard", "false"],
                                 folders[0]), (["--address", address], folders[1])):
            node = subprocess.run([RAY, "start", *command, "--temp-dir", str(folder),
                                   "--num-cpus", "1", "--disable-usage-stats"],
                                  capture_output=True, text=True, timeout=120, env=cluster_env(),
                                  cwd=elsewhere)
            assert node.returncode == 0, f"ray start {command[0]}: {node.stderr[-3000:]}"
        yield address
    finally:
        stop_nodes(folders)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-inputs")
    shutil.copy(TESTDATA / "face.jpg", root / "a_face.jpg")
    shutil.copy(TESTDATA / "grace_hopper.bmp", root / "b_hopper.bmp")
    for file in sorted((FER / "test" / "happy").glob("PrivateTest_*.jpg"))[:12]:
        shutil.copy(file, root / file.name)
    (root / "c_corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    write_panning_video(TESTDATA / "face.jpg", root / "d_clip.mp4", frames=20, step=3)
    write_panning_video(TESTDATA / "grace_hopper.bmp", root / "e_clip.mp4", frames=15, step=2)
    return root


def predict(inputs: Path, out: Path, *extra: str, monkeypatch: pytest.MonkeyPatch):
    """``emotrace predict INPUTS`` run from ``out``, every path relative to it (the README's
    ``predict archive/ --csv faces.csv --ray auto``); in this process, where the Ray driver runs
    (emotrace's imports are paid once, not once a call)."""
    out.mkdir()
    with monkeypatch.context() as scope:
        scope.chdir(out)
        return cli("predict", os.path.relpath(inputs, out), "--json", "--csv", "faces.csv",
                   "--save", "media", *extra)


def test_ray_cluster_gives_the_same_outputs_as_in_process(cluster, inputs, tmp_path, monkeypatch):
    local = predict(inputs, tmp_path / "local", monkeypatch=monkeypatch)
    distributed = predict(inputs, tmp_path / "ray", "--ray", cluster, monkeypatch=monkeypatch)
    assert distributed.returncode == local.returncode == 1, distributed.stderr[-3000:]
    assert distributed.stdout == local.stdout
    assert len(distributed.stdout.splitlines()) == 2 + 12 + 1 + 20 + 15
    assert (tmp_path / "ray" / "faces.csv").read_text() == (tmp_path / "local" / "faces.csv").read_text()
    files = sorted(p.name for p in (tmp_path / "local" / "media").iterdir())
    assert sorted(p.name for p in (tmp_path / "ray" / "media").iterdir()) == files
    assert {"d_clip.mp4", "d_clip.summary.json", "e_clip.timeline.png", "a_face.jpg"} <= set(files)
    for name in ("d_clip.summary.json", "e_clip.summary.json"):
        assert json.loads((tmp_path / "ray" / "media" / name).read_text()) == json.loads(
            (tmp_path / "local" / "media" / name).read_text())
    assert "c_corrupt.jpg: not a readable image" in distributed.stderr
    assert "work done on 2 node(s)" in distributed.stderr  # both simulated nodes took work
    assert "Traceback" not in distributed.stderr
    assert not list(tmp_path.rglob(".*partial*"))


def test_ray_without_an_address_starts_and_stops_a_local_ray(tmp_path):
    import ray

    run = cli("predict", TESTDATA / "face.jpg", "--json", "--ray")
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(json.loads(run.stdout)["faces"]) == 4
    assert "work done on 1 node(s)" in run.stderr
    assert not ray.is_initialized()  # the Ray it started is stopped


def test_an_address_where_nothing_answers_is_refused_at_once():
    """Ray itself retries such an address for 80 s and does not stop on Ctrl-C meanwhile."""
    started = time.monotonic()
    port = free_port()
    run = cli("predict", TESTDATA / "face.jpg", "--json", "--ray", f"127.0.0.1:{port}")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [
        f"emotrace predict: error: --ray 127.0.0.1:{port}: nothing answers there (Connection "
        f"refused); give the HOST:PORT of a running cluster's head node (started with 'ray "
        f"start --head --port {port}'), or --ray alone for a local Ray"]
    assert time.monotonic() - started < 10


def _histories(results: dict) -> list:
    return [run["history"] for config in results["configurations"] for run in config["per_seed"]]


def test_study_runs_as_tune_trials_and_reuses_its_cache(cluster, fer_slice, tmp_path):
    """The driver runs in this process (torch and Lightning are imported once, not twice: 20 s
    here); the trials run in the cluster's own workers."""
    pytest.importorskip("torch", reason="training needs the train extra")
    command = ["study", "transfer", "--epochs", "1", "--image-size", "32", "--subset", "1.0",
               "--seeds", "1", "--data", fer_slice, "--ray", cluster,
               "--storage", tmp_path / "runs", "--out", tmp_path / "experiments"]
    first = cli(*command)
    assert first.returncode == 0, first.stderr[-3000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.name != "tune")
    results = tmp_path / "experiments" / "transfer" / "results.json"
    before = json.loads(results.read_text())
    configurations = len(before["configurations"])  # one run each with one seed
    assert configurations >= 2 and len(runs) == configurations
    assert all((tmp_path / "runs" / r / "finished.json").is_file() for r in runs)
    assert (tmp_path / "runs" / "tune").is_dir()  # Tune's own state, beside the runs
    stamps = {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("*.ckpt")}
    again = cli(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("*.ckpt")} == stamps
    after = json.loads(results.read_text())
    assert _histories(after) == _histories(before)
    assert len(_histories(after)) == configurations


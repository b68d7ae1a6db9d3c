"""`predict --ray` on a simulated two-node Ray cluster (two `ray start` nodes of one CPU each on
this machine, stopped whatever happens): the same outputs and exit code as the in-process run."""

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node and a worker node, one CPU each, with their own temp folders, started from
    another folder than the driver's (as on a real cluster)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    # Ray's sockets live in its temp folder and a socket path has at most 107 bytes: pytest's
    # folders are too deep for it under pytest-xdist (.../pytest-N/popen-gw0/...)
    head_tmp, worker_tmp = Path(tempfile.mkdtemp(prefix="ray-h")), Path(tempfile.mkdtemp(prefix="ray-w"))
    elsewhere = tmp_path_factory.mktemp("node-folder")
    try:
        for command in (["--head", "--port", str(port), "--include-dashboard", "false",
                         "--temp-dir", str(head_tmp)],
                        ["--address", address, "--temp-dir", str(worker_tmp)]):
            node = subprocess.run([RAY, "start", *command, "--num-cpus", "1",
                                   "--disable-usage-stats"], capture_output=True, text=True,
                                  timeout=120, env=cluster_env(), cwd=elsewhere)
            assert node.returncode == 0, f"ray start {command[0]}: {node.stderr[-3000:]}"
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, env=cluster_env())
        for folder in (head_tmp, worker_tmp):
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


def predict(inputs: Path, out: Path, *extra: str, timeout: int = 300):
    """``emotrace predict INPUTS`` run from ``out``, every path relative to it (the README's
    ``predict archive/ --csv faces.csv --ray auto``)."""
    out.mkdir()
    run = subprocess.run([sys.executable, "-m", "emotrace.cli.main", "predict",
                          os.path.relpath(inputs, out), "--json", "--csv", "faces.csv",
                          "--save", "media", *extra], capture_output=True, text=True,
                         timeout=timeout, env=cluster_env(), cwd=out)
    return run


def test_ray_cluster_gives_the_same_outputs_as_in_process(cluster, inputs, tmp_path):
    local = predict(inputs, tmp_path / "local")
    distributed = predict(inputs, tmp_path / "ray", "--ray", cluster)
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
    run = subprocess.run([sys.executable, "-m", "emotrace.cli.main", "predict",
                          str(TESTDATA / "face.jpg"), "--json", "--ray"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(json.loads(run.stdout)["faces"]) == 4
    assert "work done on 1 node(s)" in run.stderr


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


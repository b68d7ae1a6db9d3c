"""Shared fixtures: paths into ../shared, a real FER-2013 slice, a torch hub cache with the
ImageNet MobileNetV2 weights (as CI sets it up), generated videos.

These are the integration tests (real data, models, servers, browsers); ``tests/unit`` has no
conftest and runs in a clone with no ``../shared`` beside it. Importing this file touches
nothing. Only a session that collects tests outside ``tests/unit`` needs ../shared, and it stops at
once, with one line, when it is missing."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# Idle OpenMP threads sleep instead of spinning (torch's CPU kernels, in this process and in every
# process a test starts), set before any test module imports torch. Measured on this shared 2-core
# machine at load 6-9: one MobileNetV2 training step (48 px, batch 32, 2 threads) took 2.0-2.6 s
# with OpenMP's default spin-wait and 0.6-1.0 s with passive waiting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under ``pytest -n 2`` two test processes share the two cores: one torch thread each, not two
# each contending for them (set before torch is imported: torch reads it once).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EMOTRACE_SHARED", REPO.parent / "shared"))
FER = SHARED / "data" / "fer2013"
TESTDATA = SHARED / "testdata"
WEIGHTS = SHARED / "weights"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


UNIT = Path(__file__).resolve().parents[1] / "unit"


#: The longest files first, as measured in one ``-n 2`` run: with ``-n 2 --dist loadfile
#: --no-loadscope-reorder`` each file goes whole to the next free process (xdist otherwise orders
#: files by their number of tests), and a long file handed out last ran alone at the end (the
#: suite took 441 s with test_ray.py last).
LONGEST_FIRST = ("test_experiments.py",    # 116 s: a study end to end, Grad-CAM, ensembles
                 "test_training.py",       # 103 s: training, soups, REPAIR
                 "test_ray.py",            # 96 s: two Ray clusters, Tune trials
                 "test_hardening.py",      # 53 s: processes stopped, killed, starved
                 "test_service_trust.py",  # 38 s: servers started, stopped, starved
                 "test_model_quality.py")  # 35 s: the accurate ensemble on 899 faces


def pytest_collection_modifyitems(config, items):
    """Refuse, before any test runs, a session with tests that read ../shared when it is missing;
    put the longest files first."""
    needs_shared = [item for item in items if UNIT not in Path(str(item.fspath)).parents]
    if needs_shared and not FER.is_dir():
        raise pytest.UsageError(f"FER-2013 not found at {FER}; put ../shared beside the checkout "
                                "or set EMOTRACE_SHARED (tests/unit alone runs without it)")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))  # stable


@pytest.fixture(scope="session", autouse=True)
def isolated_caches(tmp_path_factory):
    """A private dataset cache and a torch hub cache holding the ImageNet MobileNetV2 file, one
    for the whole session: the test processes of ``pytest -n 2`` share it, so FER-2013 is decoded
    once (12-19 s) rather than once per process. Its entries are written atomically."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest-xdist: the folder above is the session's
        root = root.parent
    root = root / "caches"
    os.environ["EMOTRACE_CACHE"] = str(root / "emotrace")
    checkpoints = root / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    weights = WEIGHTS / "mobilenet_v2-b0353104.pth"
    with contextlib.suppress(FileExistsError):  # the other test process made it first
        if weights.is_file():  # absent beside a unit-only clone
            os.symlink(weights, checkpoints / weights.name)
    os.environ["TORCH_HOME"] = str(root / "torch")
    yield


@pytest.fixture(scope="session")
def fer2013(isolated_caches):
    """All of FER-2013 (35,887 faces), decoded once for the session (12-19 s): the test processes
    take turns, so the second reads the first's cache instead of decoding it at the same time."""
    import fcntl

    from emotrace.data import load_dataset

    lock = Path(os.environ["EMOTRACE_CACHE"]) / "fer2013.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        return load_dataset(FER)


@pytest.fixture(scope="session")
def fer_slice(tmp_path_factory) -> Path:
    """A real FER-2013 slice in the Kaggle layout: per class 20 Training, 5 PublicTest and
    5 PrivateTest images (disgust included): 140 / 35 / 35 images."""
    root = tmp_path_factory.mktemp("fer_slice")
    for split, prefixes in (("train", {"Training": 20}), ("test", {"PublicTest": 5, "PrivateTest": 5})):
        for name in CLASSES:
            files = sorted(os.listdir(FER / split / name))  # names: sorting Paths took 0.8 s a session
            target = root / split / name
            target.mkdir(parents=True)
            for prefix, count in prefixes.items():
                for file in [f for f in files if f.startswith(prefix)][:count]:
                    shutil.copy(FER / split / name / file, target / file)
    return root


@pytest.fixture(scope="session")
def panning_video(tmp_path_factory) -> Path:
    from emotrace.testing import write_panning_video

    return write_panning_video(TESTDATA / "face.jpg",
                               tmp_path_factory.mktemp("video") / "faces.mp4", frames=30, step=2)


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> Path:
    """A 1200-frame still video (40 s): long enough that a run stopped on its first rows has
    most of it left. Written once for every test that stops or kills a run part-way."""
    from emotrace.testing import write_panning_video

    return write_panning_video(TESTDATA / "face.jpg", tmp_path_factory.mktemp("long") / "long.mp4",
                               frames=1200, step=0)


@pytest.fixture(scope="session")
def recognizer():
    """The default Recognizer, its models loaded once for the session's tests that only read
    its answers (each predict() starts its sources afresh: no state is carried between calls)."""
    from emotrace import Recognizer

    return Recognizer()


def cli(*args: object) -> subprocess.CompletedProcess:
    """``emotrace ARGS`` through the command's entry point in this process: its exit code and
    what it printed, as a subprocess would give them, without a fresh interpreter importing
    OpenCV, onnxruntime and SciPy again (about 2 s of CPU a call). Tests of what only a process
    shows (signals, peak memory, start-up, concurrent runs, hangs) use :func:`cli_process`."""
    from emotrace.cli.main import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    log_level = os.environ.get("OPENCV_FFMPEG_LOGLEVEL")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as stop:  # argparse: usage errors (2), --help / --version (0)
                code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        for signum, handler in handlers.items():  # main() installs its own
            signal.signal(signum, handler)
        if log_level is None:
            os.environ.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    return subprocess.CompletedProcess(["emotrace", *argv], code, out.getvalue(), err.getvalue())


def cli_process(*args: object, timeout: float = 120, **options) -> subprocess.CompletedProcess:
    """``python -m emotrace.cli.main ARGS`` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "emotrace.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **options)

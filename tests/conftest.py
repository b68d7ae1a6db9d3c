"""Shared fixtures: paths into ../shared, a real FER-2013 slice, a torch hub cache with the
ImageNet MobileNetV2 weights (as CI sets it up), generated videos.

Importing this file touches nothing: ``tests/unit`` runs in a clone with no ``../shared`` beside
it. Only a session that collects tests outside ``tests/unit`` needs ../shared, and it stops at
once, with one line, when it is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOTRACE_SHARED", REPO.parent / "shared"))
FER = SHARED / "data" / "fer2013"
TESTDATA = SHARED / "testdata"
WEIGHTS = SHARED / "weights"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(config, items):
    """Refuse, before any test runs, a session with tests that read ../shared when it is missing."""
    needs_shared = [item for item in items if UNIT not in Path(str(item.fspath)).parents]
    if needs_shared and not FER.is_dir():
        raise pytest.UsageError(f"FER-2013 not found at {FER}; put ../shared beside the checkout "
                                "or set EMOTRACE_SHARED (tests/unit alone runs without it)")


@pytest.fixture(scope="session", autouse=True)
def isolated_caches(tmp_path_factory):
    """A private dataset cache and a torch hub cache holding the ImageNet MobileNetV2 file."""
    root = tmp_path_factory.mktemp("caches")
    os.environ["EMOTRACE_CACHE"] = str(root / "emotrace")
    checkpoints = root / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    if (WEIGHTS / "mobilenet_v2-b0353104.pth").is_file():  # absent beside a unit-only clone
        os.symlink(WEIGHTS / "mobilenet_v2-b0353104.pth",
                   checkpoints / "mobilenet_v2-b0353104.pth")
    os.environ["TORCH_HOME"] = str(root / "torch")
    yield


@pytest.fixture(scope="session")
def fer_slice(tmp_path_factory) -> Path:
    """A real FER-2013 slice in the Kaggle layout: per class 20 Training, 5 PublicTest and
    5 PrivateTest images (disgust included): 140 / 35 / 35 images."""
    root = tmp_path_factory.mktemp("fer_slice")
    for split, prefixes in (("train", {"Training": 20}), ("test", {"PublicTest": 5, "PrivateTest": 5})):
        for name in CLASSES:
            files = sorted((FER / split / name).iterdir())
            target = root / split / name
            target.mkdir(parents=True)
            for prefix, count in prefixes.items():
                for file in [f for f in files if f.name.startswith(prefix)][:count]:
                    shutil.copy(file, target / file.name)
    return root


@pytest.fixture(scope="session")
def panning_video(tmp_path_factory) -> Path:
    from emotrace.testing import write_panning_video

    return write_panning_video(TESTDATA / "face.jpg",
                               tmp_path_factory.mktemp("video") / "faces.mp4", frames=30, step=2)

"""Result objects and the file helpers every output goes through: JSON shape, drawing, atomic
writes, and the clean-up of partial files left by dead processes."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emotrace.data.labels import EMOTIONS
from emotrace.errors import OutputError, UsageError
from emotrace.inference.results import Face, Result
from emotrace.utils import (atomic_path, check_output_dir, check_output_file, partial_path,
                            remove_dead_partials, remove_stale_partials)


def _face(**fields) -> Face:
    scores = {e: 0.0 for e in EMOTIONS} | {"surprise": 1.0}
    return Face(box=(10, 10, 40, 40), emotion="surprise", scores=scores, score=0.8, **fields)


def test_face_and_result_dicts_carry_only_what_is_known():
    still = Result("a.jpg", [_face()]).to_dict()
    assert still == {"source": "a.jpg", "frame": None, "time": None,
                     "faces": [{"box": [10, 10, 40, 40], "score": 0.8, "emotion": "surprise",
                                "scores": _face().scores}]}
    tracked = _face(track_id=2, person_id=5, landmarks=[[1.0, 2.0]] * 5).to_dict()
    assert (tracked["track_id"], tracked["person_id"], len(tracked["landmarks"])) == (2, 5, 5)
    failed = Result("b.jpg", error="file not found", warning="small")
    assert not failed.ok and failed.to_dict()["error"] == "file not found"
    assert failed.to_dict()["warning"] == "small" and Result("c.jpg").ok


def test_drawing_marks_the_face_and_saving_is_atomic(tmp_path):
    image = np.full((200, 240, 3), 255, np.uint8)
    result = Result("a.jpg", [_face(person_id=3)], image=image)
    drawn = result.draw()
    assert drawn.shape == image.shape and (image == 255).all()  # the input is left as it was
    assert not np.array_equal(drawn[10:51, 10:51], image[10:51, 10:51])
    assert np.array_equal(drawn[120:], image[120:])  # below its label and bars: untouched
    path = result.save(tmp_path / "sub" / "a.png")
    assert np.array_equal(cv2.imread(str(path)), drawn)  # PNG: lossless
    with pytest.raises(ValueError, match="no image to draw on"):
        Result("x.jpg").draw()
    for suffix in (".txt", ".json"):  # OpenCV has no encoder for it: one line, no folder made
        with pytest.raises(UsageError, match=rf"notes{suffix}: cannot write an image with the "
                                             rf"suffix '\{suffix}'; use .jpg or .png"):
            result.save(tmp_path / "new" / f"notes{suffix}")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "sub"]


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.") and not target.exists()
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]
    with pytest.raises(OutputError, match="out.json: cannot write it"):
        with atomic_path(target) as tmp:
            pass  # nothing written: the rename fails


def test_partial_files_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "faces.csv"
    stale = tmp_path / f".faces.{dead.pid}-0badc0de.partial.csv"
    other = tmp_path / f".clip.{dead.pid}-0badc0de.partial.mp4"
    live = tmp_path / f".faces.{os.getppid()}-0badc0de.partial.csv"
    mine = partial_path(target)
    unrelated = tmp_path / ".faces.notes"
    for path in (stale, other, live, mine, unrelated):
        path.write_text("x")
    assert mine.name.startswith(f".faces.{os.getpid()}-") and mine.suffix == ".csv"
    assert remove_stale_partials(target) == [stale]
    assert remove_dead_partials(tmp_path) == [other]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, mine, unrelated))


def test_output_checks_refuse_before_any_work(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match="names a file, not a folder"):
        check_output_dir(tmp_path / "file.txt", "--save")
    with pytest.raises(OutputError, match="--save: cannot write into this folder"):
        check_output_dir(tmp_path / "file.txt" / "below", "--save")
    with pytest.raises(OutputError, match="--csv names a folder"):
        check_output_file(tmp_path, "--csv")
    assert check_output_dir(tmp_path / "new" / "deep", "--save").is_dir()
    assert check_output_file(tmp_path / "made" / "f.csv", "--csv") == tmp_path / "made" / "f.csv"
    assert not list(tmp_path.rglob(".*partial*"))  # the write probe cleaned up after itself

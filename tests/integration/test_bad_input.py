import json
import subprocess
import sys

import pytest

from conftest import TESTDATA, cli, cli_process


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is a text file, not a JPEG\n")
    data = (TESTDATA / "face.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[:200])
    from emotrace.testing import write_panning_video

    video = write_panning_video(TESTDATA / "face.jpg", root / "full.mp4", frames=60)
    payload = video.read_bytes()
    (root / "truncated.mp4").write_bytes(payload[: len(payload) // 3])
    return root


@pytest.mark.parametrize("name, message", [("empty.jpg", "empty file"),
                                           ("text.jpg", "not a readable image"),
                                           ("truncated.jpg", "not a readable image"),
                                           ("missing.jpg", "not found")])
def test_unreadable_images_give_a_clear_error(recognizer, bad_inputs, name, message):
    result = recognizer.predict(bad_inputs / name)[0]
    assert not result.ok and message in result.error and result.faces == []


def test_truncated_video_reports_where_it_ended(recognizer, bad_inputs):
    results = recognizer.predict(bad_inputs / "truncated.mp4")
    assert not results[-1].ok
    assert "truncated" in results[-1].error or "cannot open" in results[-1].error
    assert all(r.ok for r in results[:-1])
    assert len(results) - 1 < 60


def test_unreadable_camera_does_not_hang(recognizer):
    result = recognizer.predict(97)[0]
    assert not result.ok and "camera 97" in result.error


def test_batch_goes_on_and_exit_code_says_something_failed(bad_inputs, tmp_path):
    out = tmp_path / "out"
    run = cli("predict", TESTDATA / "face.jpg", bad_inputs / "text.jpg",
                   bad_inputs / "empty.jpg", TESTDATA / "cat.bmp", "--json",
                   "--csv", tmp_path / "faces.csv", "--save", out)
    assert run.returncode == 1
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [len(line["faces"]) for line in lines] == [4, 0, 0, 0]
    assert "error" in lines[1] and "error" in lines[2]
    assert "text.jpg" in run.stderr and "empty.jpg" in run.stderr
    assert "cat.bmp: no face found" in run.stderr
    assert "Traceback" not in run.stderr
    assert len((tmp_path / "faces.csv").read_text().splitlines()) == 1 + 4
    assert sorted(p.name for p in out.iterdir()) == ["cat.jpg", "face.jpg"]
    assert not list(tmp_path.rglob(".*partial*"))


def test_show_without_display_still_writes_outputs(tmp_path, panning_video):
    run = cli("predict", panning_video, "--every", "10", "--show", "--csv", tmp_path / "f.csv")
    assert run.returncode == 0, run.stderr
    assert "no display" in run.stderr
    assert (tmp_path / "f.csv").exists()


def test_missing_model_file_is_a_clear_error(tmp_path):
    run = cli("predict", TESTDATA / "face.jpg", "--model", tmp_path / "nope.onnx")
    assert run.returncode == 2 and "model file not found" in run.stderr
    assert "Traceback" not in run.stderr


def test_unreachable_stream_fails_fast_with_a_clear_message():
    run = cli_process("predict", "rtsp://127.0.0.1:9/live", timeout=60)  # a hang fails it
    assert run.returncode == 1
    assert "rtsp://127.0.0.1:9/live: cannot open the stream" in run.stderr


def test_ctrl_c_keeps_what_was_written(long_video, tmp_path):
    import signal
    import time

    video, frames = long_video, 1200
    process = subprocess.Popen([sys.executable, "-m", "emotrace.cli.main", "predict", str(video),
                                "--csv", str(tmp_path / "faces.csv"), "--save", str(tmp_path / "out")],
                               stderr=subprocess.PIPE, text=True,
                               # as from a terminal: a background parent (nohup, CI) may have
                               # left SIGINT ignored, which Python would then keep ignoring
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.stat().st_size > 2000
                                             for p in tmp_path.glob(".faces.*.partial.csv")):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    rows = (tmp_path / "faces.csv").read_text().splitlines()
    summary = json.loads((tmp_path / "out" / "long.summary.json").read_text())
    assert 0 < summary["frames"] < frames  # stopped part-way, kept what was done
    assert len(rows) - 1 == sum(face["frames"] for face in summary["faces"])
    assert (tmp_path / "out" / "long.mp4").exists()
    assert not list(tmp_path.rglob(".*partial*"))

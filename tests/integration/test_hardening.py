"""The failures found by trying emotrace as a hostile tester would: each must fail loudly, name
its input, keep every output file whole, and never hang or crash."""

import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import FER, TESTDATA, cli, cli_process
from emotrace.data import load_dataset
from emotrace.testing import FileServer, write_panning_video, write_png_bomb

CLI = [sys.executable, "-m", "emotrace.cli.main"]


def partial_files(folder: Path) -> list[Path]:
    return list(folder.rglob(".*partial*"))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return write_png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png", side=30000)


_MEASURED = ("import atexit, re, sys\n"
             "def peak():\n"
             "    status = open('/proc/self/status').read()\n"
             "    print('PEAK_KB', re.search(r'VmHWM:\\s*(\\d+)', status)[1], file=sys.stderr)\n"
             "atexit.register(peak)\n"
             "from emotrace.cli.main import main\n"
             "sys.exit(main(sys.argv[1:]))")


def run_measured(*args, timeout: float = 120) -> tuple[int, str, str, float]:
    """Run the CLI; return code, stdout, stderr and the peak RSS (MB) of the program itself
    (VmHWM counts from exec, unlike a forked child's rusage, which includes the parent's)."""
    run = subprocess.run([sys.executable, "-c", _MEASURED, *map(str, args)], capture_output=True,
                         text=True, timeout=timeout)
    stderr, _, peak = run.stderr.rpartition("PEAK_KB ")
    return run.returncode, run.stdout, stderr, int(peak) / 1024


# 1. decompression bombs -------------------------------------------------------------------------
def test_decompression_bomb_is_refused_by_name_and_the_batch_goes_on(bomb):
    assert bomb.stat().st_size < 3_000_000
    code, stdout, stderr, peak_mb = run_measured("predict", bomb, TESTDATA / "face.jpg", "--json")
    assert code == 1 and "Traceback" not in stderr
    assert f"{bomb}: image too large (900 MP; the limit is 100 MP)" in stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [len(line["faces"]) for line in lines] == [0, 4] and "error" in lines[0]
    assert peak_mb < 500  # refused from its header: the decoded bomb would take 900 MB+


def test_dataset_readers_refuse_bombs_too(bomb, tmp_path):
    (tmp_path / "happy").mkdir()
    shutil.copy(bomb, tmp_path / "happy" / "bomb.png")
    for file in sorted((FER / "test" / "happy").glob("PrivateTest_*.jpg"))[:3]:
        shutil.copy(file, tmp_path / "happy" / file.name)
    faces = load_dataset(tmp_path, cache=False)
    assert len(faces) == 3
    assert [(Path(f).name, "image too large" in r) for f, r, _ in faces.skipped] == [
        ("bomb.png", True)]


def test_image_at_the_pixel_limit_is_processed_under_1_gb(tmp_path):
    canvas = np.zeros((10000, 10000, 3), np.uint8)
    photo = cv2.resize(cv2.imread(str(TESTDATA / "face.jpg")), None, fx=8, fy=8)
    canvas[: photo.shape[0], : photo.shape[1]] = photo
    cv2.imwrite(str(tmp_path / "big.jpg"), canvas)
    del canvas, photo
    code, stdout, stderr, peak_mb = run_measured("predict", tmp_path / "big.jpg", "--json",
                                                 "--save", tmp_path / "out")
    assert code == 0, stderr
    faces = json.loads(stdout)["faces"]
    assert len(faces) == 4 and max(f["box"][2] for f in faces) > 500  # full-resolution boxes
    assert (tmp_path / "out" / "big.jpg").stat().st_size > 0
    assert peak_mb < 1000


# 2. EXIF orientation ----------------------------------------------------------------------------
def test_exif_orientation_is_applied_and_boxes_refer_to_the_upright_photo(recognizer, tmp_path):
    upright = Image.open(TESTDATA / "face.jpg")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # stored sideways (90 deg CCW) ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the tag that tells viewers to turn it 90 deg clockwise
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    reference = recognizer.predict(TESTDATA / "face.jpg")[0]
    result = recognizer.predict(tmp_path / "phone.jpg")[0]
    assert result.image.shape == reference.image.shape
    assert len(result.faces) == len(reference.faces) == 4
    for a, b in zip(sorted(f.box for f in result.faces), sorted(f.box for f in reference.faces)):
        assert np.abs(np.array(a) - np.array(b)).max() <= 4


# 3. empty folders and globs ---------------------------------------------------------------------
def test_empty_folder_and_unmatched_glob_give_one_plain_message(tmp_path):
    (tmp_path / "empty").mkdir()
    pattern = str(tmp_path / "*.nothing")
    run = cli("predict", tmp_path / "empty", pattern, "--json")
    assert run.returncode == 1
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["source"] for line in lines] == [str(tmp_path / "empty"), pattern]
    assert lines[0]["error"] == "folder has no image or video files"
    assert lines[1]["error"] == "no file matches this pattern"
    assert "SourceError" not in run.stdout + run.stderr
    assert f"emotrace predict: {tmp_path / 'empty'}: folder has no image or video files" in run.stderr


# 4. streams that fail -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    clip = write_panning_video(TESTDATA / "face.jpg", folder / "clip.mp4", frames=90)
    capture, writer = cv2.VideoCapture(str(clip)), None
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30,
                             (640, 480))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    with FileServer(folder, stall_s=30) as server:
        yield server


def test_mp4_without_range_requests_fails_loudly(served, tmp_path):
    url = served.url("clip.mp4")  # index at the end, and the server cannot seek
    run = cli_process("predict", url, "--csv", tmp_path / "out.csv", timeout=60)
    assert run.returncode == 1
    assert f"{url}: " in run.stderr and ("no frame" in run.stderr or "cannot open" in run.stderr)


def test_streamed_video_works_and_a_stalled_one_is_reported(served, tmp_path):
    good = cli("predict", served.url("clip.avi"), "--csv", tmp_path / "good.csv")
    assert good.returncode == 0, good.stderr
    assert "90 image(s)/frame(s) processed" in good.stderr
    url = served.url("stall-clip.avi")
    started = time.time()
    stalled = cli_process("predict", url, "--timeout", "2", "--csv", tmp_path / "stalled.csv",
                       timeout=60)
    assert time.time() - started < 25  # the 30-s stall is cut by the 2-s read timeout
    assert stalled.returncode == 1
    assert f"{url}: " in stalled.stderr and "of 90" in stalled.stderr
    rows = (tmp_path / "stalled.csv").read_text().splitlines()
    assert len(rows) > 10  # what came before the stall is kept


# 5. evaluate skips unreadable images ------------------------------------------------------------
def test_evaluate_skips_and_reports_unreadable_images(bomb, tmp_path):
    for name in ("happy", "sad"):
        (tmp_path / name).mkdir()
        for file in sorted((FER / "test" / name).glob("PrivateTest_*.jpg"))[:5]:
            shutil.copy(file, tmp_path / name / file.name)
    (tmp_path / "happy" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    shutil.copy(bomb, tmp_path / "sad" / "bomb.png")
    run = cli("evaluate", "--data", tmp_path, "--json")
    assert run.returncode == 1, run.stderr
    result = json.loads(run.stdout)
    assert result["n"] == 10 and result["skipped"] == 2
    assert sorted(Path(s["file"]).name for s in result["skipped_files"]) == ["bomb.png",
                                                                             "broken.jpg"]
    assert "skipped 2 unreadable image(s)" in run.stderr and "broken.jpg" in run.stderr
    strict = cli("evaluate", "--data", tmp_path, "--strict")
    assert strict.returncode == 2 and "broken.jpg" in strict.stderr
    assert "Traceback" not in run.stderr + strict.stderr


# 6, 7. output paths checked before any work ----------------------------------------------------
def test_unwritable_outputs_are_refused_before_any_work(tmp_path):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    save_under_file = cli("predict", TESTDATA / "face.jpg", "--save", a_file / "out")
    assert save_under_file.returncode == 2
    assert f"{a_file / 'out'}" in save_under_file.stderr
    (tmp_path / "taken").mkdir()
    csv_is_dir = cli("predict", TESTDATA / "face.jpg", "--csv", tmp_path / "taken")
    assert csv_is_dir.returncode == 2 and "names a folder" in csv_is_dir.stderr
    for run in (save_under_file, csv_is_dir):
        assert "face(s)" not in run.stdout  # nothing was processed
        assert "Traceback" not in run.stderr and "internal error" not in run.stderr
    assert not partial_files(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_save_folder_is_refused(tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    run = cli("predict", TESTDATA / "face.jpg", "--save", tmp_path / "ro")
    assert run.returncode == 2 and "cannot write into this folder" in run.stderr


# 8, 9. Ctrl-C early, SIGTERM mid-video ------------------------------------------------------------
def _wait_until_emotrace_holds_signals(pid: int, timeout: float = 30) -> None:
    """Wait for emotrace's first statement: it is the one that catches SIGTERM (the interpreter
    catches only SIGINT). Before it, a Ctrl-C lands in CPython's own start-up (site, runpy),
    which prints its traceback for any program; 0.05 s hit that window on a loaded CI machine."""
    sigterm_bit = 1 << (signal.SIGTERM - 1)
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines()
                          if line.startswith("SigCgt:")), 16)
        if caught & sigterm_bit:
            return
        time.sleep(0.001)
    raise AssertionError("the CLI never installed its signal handlers")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3, 0.8])
def test_ctrl_c_at_start_prints_no_traceback(delay):
    process = subprocess.Popen([*CLI, "predict", str(TESTDATA / "face.jpg")], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_until_emotrace_holds_signals(process.pid)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert process.returncode in (0, 130)


def _wait_for_rows(folder: Path, stem: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not any(
            p.stat().st_size > 2000 for p in folder.glob(f".{stem}.*.partial.csv")):
        time.sleep(0.05)


def test_sigterm_closes_every_output_whole(long_video, tmp_path):
    process = subprocess.Popen([*CLI, "predict", str(long_video), "--csv", str(tmp_path / "f.csv"),
                                "--save", str(tmp_path / "out")], stderr=subprocess.PIPE, text=True)
    _wait_for_rows(tmp_path, "f")
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    summary = json.loads((tmp_path / "out" / "long.summary.json").read_text())
    assert 0 < summary["frames"] < 1200
    assert len(rows) == sum(face["frames"] for face in summary["faces"])
    video = cv2.VideoCapture(str(tmp_path / "out" / "long.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"]  # playable, whole
    assert not partial_files(tmp_path)


# 10. partial files of killed runs ---------------------------------------------------------------
def test_partial_files_of_dead_processes_are_cleaned_by_the_next_run(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = os.getpid()
    stale = [tmp_path / f".faces.{dead.pid}-0badc0de.partial.csv",
             tmp_path / "out" / f".face.{dead.pid}-0badc0de.partial.jpg"]
    kept = tmp_path / f".faces.{live}-0badc0de.partial.csv"  # a live process's: not touched
    (tmp_path / "out").mkdir()
    for path in (*stale, kept):
        path.write_text("half")
    run = cli("predict", TESTDATA / "face.jpg", "--csv", tmp_path / "faces.csv",
                   "--save", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert not any(path.exists() for path in stale) and kept.exists()


def test_a_killed_runs_partial_video_is_removed_by_the_next_run_into_the_folder(long_video,
                                                                               tmp_path):
    out = tmp_path / "out"
    killed = subprocess.Popen([*CLI, "predict", str(long_video), "--save", str(out)],
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list(out.glob(".long.*.partial.mp4")):
        assert time.time() < deadline and killed.poll() is None
        time.sleep(0.05)
    killed.kill()  # SIGKILL: nothing of the run's own clean-up runs
    killed.wait()
    assert partial_files(out)
    run = cli("predict", TESTDATA / "face.jpg", "--save", out)
    assert run.returncode == 0, run.stderr
    assert not partial_files(out) and (out / "face.jpg").is_file()


# 11. two runs, one CSV --------------------------------------------------------------------------
def test_two_runs_writing_the_same_csv_both_succeed_and_the_file_is_whole(tmp_path):
    out = tmp_path / "same.csv"
    runs = [subprocess.Popen([*CLI, "predict", str(TESTDATA / photo), "--csv", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for photo in ("face.jpg", "grace_hopper.bmp")]
    results = [(r.wait(timeout=120), r.stderr.read()) for r in runs]
    assert [code for code, _ in results] == [0, 0], results
    rows = list(csv.DictReader(open(out)))
    assert len(rows) in (4, 1) and len({row["source"] for row in rows}) == 1
    assert not partial_files(tmp_path)


# 12. a write that fails mid-run ----------------------------------------------------------------
def test_write_failure_mid_video_names_the_file_and_leaves_no_partial_video(panning_video,
                                                                           tmp_path):
    def small_file_limit():  # writes past 400 kB fail (EFBIG) as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    # the drawn copy of these 30 frames takes 580 kB: the limit is reached about frame 20
    run = subprocess.run([*CLI, "predict", str(panning_video), "--save", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, preexec_fn=small_file_limit)
    assert run.returncode == 1, run.stderr
    assert f"{tmp_path / 'out' / 'faces.mp4'}" in run.stderr and "Traceback" not in run.stderr
    assert "could not be written whole" in run.stderr
    assert not (tmp_path / "out" / "faces.mp4").exists()
    assert not partial_files(tmp_path)


# 13. small images: reproducible, never a crash, said to be small -------------------------------
def test_small_images_give_the_same_output_every_run_and_a_hint(tmp_path):
    files = sorted((FER / "test" / "happy").glob("PrivateTest_*.jpg"))[:72]
    runs = [cli("predict", *files, "--json") for _ in range(3)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    assert runs[0].stdout == runs[1].stdout == runs[2].stdout
    lines = [json.loads(line) for line in runs[0].stdout.splitlines()]
    assert len(lines) == 72 and all("too small for reliable face detection" in line["warning"]
                                    for line in lines)
    assert "--detector none" in runs[0].stderr
    found = sum(bool(line["faces"]) for line in lines)
    assert found > 0  # padded for the detector, the crops' faces are found, and every time


def test_detector_drops_non_finite_and_degenerate_boxes():
    from emotrace.inference.detectors import YuNetDetector

    detector = YuNetDetector()
    for side in (8, 16, 24, 32, 48):
        for _ in range(3):
            for detection in detector.detect(np.full((side, side, 3), 128, np.uint8)):
                assert all(np.isfinite(detection.box)) and min(detection.box[2:]) > 0


# smaller mends --------------------------------------------------------------------------------
def test_importing_emotrace_changes_nothing_in_the_process(tmp_path):
    code = ("import os, sys, matplotlib; before = matplotlib.get_backend(); env = dict(os.environ)\n"
            "import emotrace\n"
            "assert 'cv2' not in sys.modules and 'onnxruntime' not in sys.modules\n"
            "from emotrace import Recognizer\n"
            "assert 'cv2' in sys.modules and 'matplotlib.pyplot' not in sys.modules\n"
            "Recognizer().predict(sys.argv[1])[0].save(sys.argv[2])\n"
            "changed = {k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)}\n"
            # OpenCV's own loader sets LD_LIBRARY_PATH when cv2 is imported: not ours to change
            "assert changed <= {'ORT_DISABLE_TELEMETRY', 'LD_LIBRARY_PATH'}, changed\n"
            "assert matplotlib.get_backend() == before\n"
            "print('ok')")
    home = tmp_path / "home"
    home.mkdir()
    run = subprocess.run([sys.executable, "-c", code, str(TESTDATA / "face.jpg"),
                          str(tmp_path / "a.jpg")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HOME": str(home), "MPLBACKEND": "svg"})
    assert run.stdout.strip() == "ok", run.stderr
    assert not (home / ".cache" / "Microsoft").exists()  # onnxruntime's telemetry stays off


def test_bugs_are_internal_errors_with_a_debug_switch():
    code = ("import sys, emotrace.cli.predict as p\n"
            "def broken(args): raise KeyError('oops')\n"
            "p.predict = broken\n"
            "from emotrace.cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))")
    quiet = subprocess.run([sys.executable, "-c", code, "predict", "x.jpg"], capture_output=True,
                           text=True, timeout=60)
    assert quiet.returncode == 1 and "internal error: KeyError" in quiet.stderr
    assert "please report it" in quiet.stderr and "Traceback" not in quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code, "--debug", "predict", "x.jpg"],
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" in loud.stderr and "KeyError" in loud.stderr
    usage = cli("predict", TESTDATA / "face.jpg", "--smooth", "1.5")
    assert usage.returncode == 2 and "smoothing must be in [0, 1)" in usage.stderr


def test_sample_photos_ship_inside_the_package():
    run = cli("predict", "--examples", "--json")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(Path(line["source"]).name, len(line["faces"])) for line in lines] == [
        ("classroom.jpg", 4), ("grace_hopper.jpg", 1)]
    nothing = cli("predict")
    assert nothing.returncode == 2 and "--examples" in nothing.stderr


# found by a second, hostile review ---------------------------------------------------------------
def test_outputs_never_replace_inputs(tmp_path):
    (tmp_path / "in").mkdir()
    photo = tmp_path / "in" / "a.jpg"
    shutil.copy(TESTDATA / "face.jpg", photo)
    before = photo.read_bytes()
    into_inputs = cli("predict", tmp_path / "in", "--save", tmp_path / "in")
    assert into_inputs.returncode == 2 and "holds input files" in into_inputs.stderr
    over_input = cli("predict", photo, "--csv", photo)
    assert over_input.returncode == 2 and "is one of the inputs" in over_input.stderr
    assert photo.read_bytes() == before


def test_csv_through_links_pipes_and_stdout(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old")
    (tmp_path / "link.csv").symlink_to(target)
    run = cli("predict", TESTDATA / "face.jpg", "--csv", tmp_path / "link.csv")
    assert run.returncode == 0 and (tmp_path / "link.csv").is_symlink()
    assert len(target.read_text().splitlines()) == 5  # the link's target got the rows
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    run = cli("predict", TESTDATA / "face.jpg", "--csv", fifo)
    assert run.returncode == 0 and len(reader.communicate(timeout=60)[0].splitlines()) == 5
    assert fifo.is_fifo()  # written through, never replaced by a file
    stdout = cli("predict", TESTDATA / "face.jpg", "--csv", "-")
    assert stdout.returncode == 0 and stdout.stdout.startswith("source,frame,time")
    assert len(stdout.stdout.splitlines()) == 5


def test_globs_do_not_follow_link_loops_and_broken_entries_are_named(tmp_path):
    tree = tmp_path / "L"
    (tree / "sub").mkdir(parents=True)
    shutil.copy(TESTDATA / "face.jpg", tree / "a.jpg")
    (tree / "sub" / "up").symlink_to("..")
    (tree / "self").symlink_to("../L")
    (tree / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    run = cli_process("predict", f"{tree}/**/*.jpg", "--json", timeout=60)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [Path(line["source"]).name for line in lines] == ["a.jpg", "gone.jpg"]
    assert run.returncode == 1 and "gone.jpg: file not found" in run.stderr
    folder = cli_process("predict", tree, "--json", timeout=60)
    assert folder.returncode == 1 and "gone.jpg: file not found" in folder.stderr


@pytest.mark.parametrize("option", [["--timeout", "nan"], ["--timeout", "1e300"],
                                    ["--min-face", "-5"], ["--csv", ""], ["--every", "0"]])
def test_bad_option_values_are_usage_errors(option):
    run = cli("predict", TESTDATA / "face.jpg", *option)
    assert run.returncode == 2 and "internal error" not in run.stderr, run.stderr


def test_kaggle_csv_with_bad_rows_is_evaluated_on_the_good_ones(tmp_path):
    good = " ".join(["100"] * 48 * 48)
    (tmp_path / "fer.csv").write_text(
        "emotion,pixels,Usage\n" + f"3,{good},PublicTest\n" * 3 + "3,,PublicTest\n"
        + "3,300 " + " ".join(["1"] * 2303) + ",PublicTest\n4\n")
    run = cli("evaluate", "--data", tmp_path / "fer.csv", "--json")
    assert run.returncode == 1, run.stderr
    result = json.loads(run.stdout)
    assert result["n"] == 3 and result["skipped"] == 3
    assert "fer.csv:5" in run.stderr or "fer.csv:5" in json.dumps(result["skipped_files"])
    (tmp_path / "latin1.csv").write_bytes("emotion,pixels\n3,caf\xe9\n".encode("latin-1"))
    latin = cli("evaluate", "--data", tmp_path / "latin1.csv")
    assert latin.returncode == 2 and "not a UTF-8 text file" in latin.stderr


def test_strict_counts_only_the_chosen_split(tmp_path):
    for split, prefix in (("train", "Training"), ("test", "PublicTest")):
        (tmp_path / split / "happy").mkdir(parents=True)
        for file in sorted((FER / "test" / "happy").glob("PublicTest_*.jpg"))[:3]:
            shutil.copy(file, tmp_path / split / "happy" / file.name.replace("PublicTest", prefix))
    (tmp_path / "train" / "happy" / "Training_bad.jpg").write_bytes(b"broken")
    val = cli("evaluate", "--data", tmp_path, "--split", "val", "--strict", "--json")
    assert val.returncode == 0 and json.loads(val.stdout)["skipped"] == 0
    train = cli("evaluate", "--data", tmp_path, "--split", "train", "--strict")
    assert train.returncode == 2 and "Training_bad.jpg" in train.stderr


# issue 29, 14: evaluate's memory is bounded by the model, not by a fixed batch ----------------
def test_evaluate_accurate_stays_small_and_batches_do_not_change_the_numbers(tmp_path):
    from emotrace.evaluation.evaluate import batch_size_for, evaluate
    from emotrace.inference.classifier import EmotionClassifier

    for name in ("happy", "sad", "surprise"):
        (tmp_path / name).mkdir()
        for file in sorted((FER / "test" / name).glob("PrivateTest_*.jpg"))[:40]:
            shutil.copy(file, tmp_path / name / file.name)
    code, stdout, stderr, peak_mb = run_measured("evaluate", "--data", tmp_path, "--model",
                                                 "accurate", "--json", timeout=300)
    assert code == 0, stderr
    assert json.loads(stdout)["n"] == 120
    assert peak_mb < 1000  # 120 faces in one batch (the old fixed 256) took 1.8 GB
    fast = EmotionClassifier("fast")
    assert batch_size_for(fast) < 120 and batch_size_for(EmotionClassifier("accurate")) <= 4
    bounded, whole = evaluate(fast, tmp_path), evaluate(fast, tmp_path, batch_size=256)
    assert np.allclose(bounded.probs, whole.probs, atol=1e-5)
    assert bounded.summary() == whole.summary()

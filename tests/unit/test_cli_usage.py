"""The command line's answers to mistakes: exit code 2 and one line that says what to fix,
before any work and without a traceback. The entry point runs in this process (its imports are
paid once, not per case); one case runs the installed command as a user does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

from emotrace.cli.main import main


@pytest.fixture
def emotrace(capsys, monkeypatch):
    """``emotrace ARGS`` through :func:`main`: exit code, stdout, stderr. The signal handlers
    and environment variable the command sets for itself are put back afterwards."""
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "-8")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def run(*args):
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:  # argparse's usage errors and --version / --help
            code = stop.code
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run


def _one_usage_line(run) -> str:
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr
    return run.stderr


@pytest.mark.parametrize("args, message", [
    ((), "required: COMMAND"),
    (("recognise", "a.jpg"), "invalid choice: 'recognise'"),
    (("predict", "a.jpg", "--detector", "mtcnn"), "argument --detector: invalid choice: 'mtcnn'"),
    (("predict", "a.jpg", "--every", "two"), "argument --every: invalid int value: 'two'"),
    (("predict", "a.jpg", "--timeout", "soon"), "argument --timeout: invalid float value"),
    (("evaluate",), "the following arguments are required: --data"),
    (("explain", "a.jpg"), "the following arguments are required: --save"),
])
def test_argument_errors_name_the_option(emotrace, args, message):
    run = emotrace(*args)
    assert message in _one_usage_line(run)
    assert run.stderr.startswith("usage: emotrace")


@pytest.mark.parametrize("args, message", [
    (("predict",), "give at least one SOURCE"),
    (("predict", "a.jpg", "--every", "0"), "--every must be 1 or more, got 0"),
    (("predict", "a.jpg", "--detect-every", "-1"), "--detect-every must be 1 or more, got -1"),
    (("predict", "a.jpg", "--csv", "-", "--json"), "--csv - and --json both write to standard "
                                                   "output; choose one"),
    (("predict", "a.jpg", "--workers", "2"), "--workers takes a number of 1 or more and goes "
                                             "with --ray"),
    (("predict", "a.jpg", "--csv", " "), "--csv needs a name, got an empty one"),
])
def test_option_values_checked_before_any_work(emotrace, args, message):
    stderr = _one_usage_line(emotrace(*args))
    assert stderr.startswith("emotrace predict: error: ") and message in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_the_installed_command_answers_version_and_help():
    from emotrace import __version__

    def command(*args):
        return subprocess.run([sys.executable, "-m", "emotrace.cli.main", *args],
                              capture_output=True, text=True, timeout=120)

    assert command("--version").stdout.strip() == f"emotrace {__version__}"
    run = command("predict", "--help")
    assert run.returncode == 0 and "--classify-every" in run.stdout


def test_missing_model_and_missing_dataset_are_named(emotrace, tmp_path):
    model = _one_usage_line(emotrace("predict", "a.jpg", "--model", tmp_path / "nope.onnx"))
    assert "model file not found" in model and str(tmp_path / "nope.onnx") in model
    data = _one_usage_line(emotrace("evaluate", "--data", tmp_path / "nowhere"))
    assert "dataset not found" in data and str(tmp_path / "nowhere") in data


def test_unreadable_inputs_are_results_and_exit_1(emotrace, tmp_path):
    (tmp_path / "text.jpg").write_text("not a picture")
    run = emotrace("predict", tmp_path / "missing.jpg", tmp_path / "text.jpg", "--json")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(line["error"], line["faces"]) for line in lines] == [
        ("file not found", []),
        ("not a readable image (corrupt, truncated or not an image file)", [])]
    assert f"{tmp_path / 'text.jpg'}: not a readable image" in run.stderr


def _import_interrupted_by_ctrl_c(_args):
    """What an extension module does when Ctrl-C lands while it loads (onnxruntime does)."""
    from emotrace.utils import Interrupted

    try:
        raise Interrupted(signal.SIGTERM)
    except KeyboardInterrupt as stop:
        raise ImportError("initialization failed") from stop


@pytest.mark.parametrize("debug", [False, True])
def test_an_error_caused_by_an_interruption_is_an_interruption_not_a_bug(capsys, debug):
    from emotrace.cli.commands import run

    args = SimpleNamespace(run=_import_interrupted_by_ctrl_c, command="predict", debug=debug)
    assert run(args) == 143
    assert capsys.readouterr().err == "emotrace predict: interrupted\n"


def test_a_ctrl_c_after_the_work_is_done_keeps_the_exit_code(tmp_path):
    """CPython puts default handlers back while it shuts down: a Ctrl-C there killed finished
    runs (exit -2). Once main() has returned, the program ignores it."""
    program = ("import os, signal, sys\n"
               "from emotrace.cli.main import main\n"
               "code = main()\n"
               "os.kill(os.getpid(), signal.SIGINT)\n"
               "os.kill(os.getpid(), signal.SIGTERM)\n"
               "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", program, "predict", str(tmp_path / "gone.jpg")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # the missing photo is a failed source
    assert "Traceback" not in done.stderr and "interrupted" not in done.stderr

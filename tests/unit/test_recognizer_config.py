"""RecognizerConfig: the Recognizer's options declared and checked once, and the CLI flags made
from them. No data and no model: the config module imports nothing heavy."""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys

import pytest

from emotrace.config import DETECTORS, RecognizerConfig
from emotrace.errors import ConfigError, UsageError, requires_extra


def test_defaults_are_the_documented_ones_and_a_config_pickles_for_ray_workers():
    config = RecognizerConfig()
    assert (config.model, config.detector, config.min_face, config.smooth, config.timeout,
            config.classify_every, config.detect_every) == (None, "yunet", 24, 0.0, 10.0, 1, 1)
    assert config.track and config.identify and config.identifies
    assert pickle.loads(pickle.dumps(config.replace(detect_every=2))).detect_every == 2


@pytest.mark.parametrize("options, message", [
    ({"classify_every": 0}, "classify_every must be 1 or more, got 0"),
    ({"detect_every": 1.5}, "detect_every must be 1 or more, got 1.5"),
    ({"detect_every": True}, "detect_every must be 1 or more"),
    ({"classify_every": 2, "track": False}, "needs tracking on"),
    ({"smooth": 1.0}, "smoothing must be in [0, 1)"),
    ({"smooth": -0.1}, "smoothing must be in [0, 1)"),
    ({"timeout": 0}, "timeout must be between 0 and"),
    ({"timeout": float("nan")}, "timeout must be between 0 and"),
    ({"min_face": -1}, "min_face must be 0 or more pixels"),
    ({"detector": "mtcnn"}, "unknown detector 'mtcnn'; use yunet, haar, none"),
    ({"threads": 0}, "threads must be 1 or more"),
])
def test_out_of_range_options_are_refused_when_the_config_is_made(options, message):
    with pytest.raises(ConfigError) as caught:
        RecognizerConfig(**options)
    assert message in str(caught.value)
    with pytest.raises(ConfigError):  # replace() checks again
        RecognizerConfig().replace(**options)


def test_identity_needs_tracking():
    assert not RecognizerConfig(track=False).identifies
    assert not RecognizerConfig(identify=False).identifies


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    RecognizerConfig.add_arguments(parser)
    return parser


def test_cli_flags_are_made_from_the_fields_and_give_the_same_config():
    args = _parser().parse_args(["--model", "accurate", "--detector", "haar", "--min-face", "40",
                                 "--no-track", "--smooth", "0.5", "--timeout", "3",
                                 "--no-identify"])
    assert RecognizerConfig.from_arguments(args) == RecognizerConfig(
        model="accurate", detector="haar", min_face=40, track=False, smooth=0.5, timeout=3.0,
        identify=False)
    assert RecognizerConfig.from_arguments(_parser().parse_args([])) == RecognizerConfig()
    with pytest.raises(SystemExit):  # argparse refuses a detector that is not a choice
        _parser().parse_args(["--detector", "mtcnn"])
    assert set(DETECTORS) == {"yunet", "haar", "none"}


def test_a_cli_error_names_the_flag_not_the_field():
    args = _parser().parse_args(["--detect-every", "-1"])
    with pytest.raises(ConfigError, match=r"^--detect-every must be 1 or more, got -1$"):
        RecognizerConfig.from_arguments(args)
    args = _parser().parse_args(["--classify-every", "2", "--no-track"])
    with pytest.raises(ConfigError, match=r"^--classify-every follows faces"):
        RecognizerConfig.from_arguments(args)


def test_the_config_module_imports_no_opencv_or_onnxruntime():
    code = ("import sys, emotrace.config; "
            "print(sorted(m for m in ('cv2', 'onnxruntime', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_requires_extra_turns_a_missing_import_into_a_usage_error_naming_the_extra():
    with pytest.raises(UsageError, match=r"^study needs the train extra: pip install "
                                         r"'emotrace\[train\]' \(No module named"):
        with requires_extra("train", "study"):
            import emotrace_no_such_module  # noqa: F401
    with requires_extra("train", "study"):  # present: nothing happens
        import json  # noqa: F401

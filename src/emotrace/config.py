"""``RecognizerConfig``: every option of a :class:`~emotrace.inference.Recognizer`, declared and
validated once.

The Python API, the CLI (its ``predict`` flags are made from these fields), the HTTP service
and the Ray workers (which get the driver's config, a small frozen value that pickles) all use
this one declaration. It imports nothing heavy (no OpenCV): the CLI builds its parser from it
on every start.

Example:
    >>> from emotrace.config import RecognizerConfig
    >>> config = RecognizerConfig(classify_every=3, detect_every=2)
    >>> config.replace(smooth=0.5).smooth
    0.5
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emotrace.errors import ConfigError

if TYPE_CHECKING:
    from emotrace.inference.framing import Framing

DEFAULT_MIN_FACE = 24
#: A stream or camera that delivers no frame for this long is reported as stalled.
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 86_400  # OpenCV takes the timeout in milliseconds as a 32-bit integer
#: The face detectors by name (:data:`emotrace.inference.detectors.DETECTORS` has their classes).
DETECTORS = ("yunet", "haar", "none")
MODEL_HELP = ("emotion model: a shipped one by name, 'fast' (default) or 'accurate' (an "
              "ensemble, slower), or an exported .onnx file")


def _option(default: Any, flag: str | None = None, help: str = "", **argparse: Any) -> Any:
    """A field with its command-line flag (None: not on the command line) and help text."""
    return field(default=default, metadata={"flag": flag, "help": help, **argparse})


@dataclass(frozen=True)
class RecognizerConfig:
    """The options of a Recognizer, checked when the value is made.

    Attributes:
        model: a shipped model's name (``fast``, ``accurate``) or an exported ``.onnx`` file;
            None means ``fast``.
        detector: ``yunet``, ``haar``, ``none`` (each image is one face crop) or a detector
            object (in-process use only).
        min_face: faces smaller than this (pixels, shorter side) are ignored: a classifier
            trained on 48-px faces reads little from fewer than 24 px, and skipping them lets
            YuNet run on a smaller copy of the frame (3x faster on VGA).
        framing: how a detected box becomes the classifier's crop (None: the measured default,
            :data:`emotrace.inference.recognizer.DEFAULT_FRAMING`).
        track: keep face ids across video frames.
        smooth: EMA factor for per-track scores in video (0 = off).
        threads: onnxruntime threads (None: its default).
        timeout: seconds without a frame after which a stream or camera is reported as stalled.
        classify_every: in video, classify each tracked face every k-th frame (staggered across
            faces, new faces at once) and carry its scores in between: k=3 at 30 fps still reads
            each face 10 times a second and makes a crowded frame about twice as fast
            (``benchmarks/classroom.py``). Needs tracking.
        detect_every: in video, detect faces every k-th frame and move the tracked faces in
            between. Needs tracking.
        identify: in video, give each person one ``person_id`` for the whole video, across
            losses and shot changes (SFace embeddings matched to the people seen so far); off
            without tracking, where each motion track is its own person. A new face seen poorly
            (half covered, at the frame's border, a low detector score) while someone known is
            away has no ``person_id`` for up to 10 frames, until it is seen well enough to
            know who it is.

    Raises:
        ConfigError: a value out of range; the message starts with the option's name.
    """

    model: str | None = _option(None, "--model", MODEL_HELP)
    detector: Any = _option("yunet", "--detector", "face detector; 'none' = the images are "
                            "face crops (default: %(default)s)", choices=DETECTORS)
    min_face: int = _option(DEFAULT_MIN_FACE, "--min-face", "ignore faces smaller than PX "
                            "pixels; smaller values find tinier faces but detect more slowly "
                            "(default: %(default)s)", type=int, metavar="PX")
    framing: Framing | None = _option(None)
    track: bool = _option(True, "--no-track", "video: no face ids across frames")
    smooth: float = _option(0.0, "--smooth", "video: exponential smoothing of each face's "
                            "scores, 0..1 (default: off)", type=float, metavar="A")
    threads: int | None = _option(None)
    timeout: float = _option(DEFAULT_TIMEOUT_S, "--timeout", "streams and cameras: seconds "
                             "without a frame before the source is reported as stalled "
                             "(default: %(default)s)", type=float, metavar="S")
    classify_every: int = _option(1, "--classify-every", "video: classify each tracked face "
                                  "every K-th frame and carry its scores between (faster on "
                                  "crowded video; default: %(default)s)", type=int, metavar="K")
    detect_every: int = _option(1, "--detect-every", "video: detect faces every K-th frame and "
                                "follow them with the tracker between (faster; default: "
                                "%(default)s)", type=int, metavar="K")
    identify: bool = _option(True, "--no-identify", "video: no person ids across losses and "
                             "cuts (each motion track is its own person; faster)")

    def __post_init__(self) -> None:
        if not 0.0 <= self.smooth < 1.0:
            raise ConfigError(f"smoothing must be in [0, 1), got {self.smooth}")
        for name in ("classify_every", "detect_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be 1 or more, got {value!r}")
            if value > 1 and not self.track:
                raise ConfigError(f"{name} follows faces across frames: it needs tracking on")
        if not 0 < self.timeout <= MAX_TIMEOUT_S:  # also refuses nan
            raise ConfigError(f"timeout must be between 0 and {MAX_TIMEOUT_S} seconds, got "
                              f"{self.timeout}")
        if self.min_face < 0:
            raise ConfigError(f"min_face must be 0 or more pixels, got {self.min_face}")
        if isinstance(self.detector, str) and self.detector not in DETECTORS:
            raise ConfigError(f"unknown detector {self.detector!r}; use {', '.join(DETECTORS)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be 1 or more, got {self.threads}")

    def replace(self, **changes: Any) -> RecognizerConfig:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)

    @property
    def identifies(self) -> bool:
        """Whether person ids are kept (identity needs tracking)."""
        return self.identify and self.track

    # --- the command line ---------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the fields that have a flag to ``parser`` (``--no-X`` flags switch X off)."""
        for spec in dataclasses.fields(cls):
            meta = dict(spec.metadata)
            flag = meta.pop("flag", None)
            if flag is None:
                continue
            if flag.startswith("--no-"):
                parser.add_argument(flag, dest=spec.name, action="store_false", **meta)
            else:
                parser.add_argument(flag, dest=spec.name, default=spec.default, **meta)

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> RecognizerConfig:
        """The config of parsed ``args``; an error names the flag, not the field."""
        values = {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(cls)
                  if spec.metadata.get("flag") and hasattr(args, spec.name)}
        try:
            return cls(**values)
        except ConfigError as error:
            message = str(error)
            for spec in dataclasses.fields(cls):
                flag = spec.metadata.get("flag")
                if flag and message.startswith(spec.name + " "):
                    raise ConfigError(flag + message[len(spec.name):]) from None
            raise

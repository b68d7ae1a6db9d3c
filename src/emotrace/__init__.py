"""emotrace: facial emotion recognition with transfer learning.

Importing the package is cheap and changes nothing (no OpenCV, onnxruntime or matplotlib until
they are used): the names below are loaded on first access.

Example:
    >>> import emotrace
    >>> rec = emotrace.Recognizer()          # shipped model, YuNet face detector
    >>> [face.emotion for face in rec.predict(emotrace.sample_photos()[0])[0].faces]
    ['neutral', 'sad', 'neutral', 'neutral']
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {"EMOTIONS": "emotrace.data.labels", "EmotionClassifier": "emotrace.inference",
         "Face": "emotrace.inference", "Recognizer": "emotrace.inference",
         "Result": "emotrace.inference", "sample_photos": "emotrace.samples"}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> object:  # no `typing` import: 12 ms before the CLI holds Ctrl-C
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emotrace' has no attribute {name!r}")

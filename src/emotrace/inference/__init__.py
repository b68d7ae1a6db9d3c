"""Recognition on the plain install (numpy, OpenCV, onnxruntime): never imports torch."""

from emotrace.inference.classifier import (DEFAULT_MODEL, EmotionClassifier, ModelError,
                                           default_model_path)
from emotrace.inference.detectors import Detection, create_detector
from emotrace.inference.framing import Framing
from emotrace.inference.recognizer import Recognizer
from emotrace.inference.sources import probe_video
from emotrace.inference.results import Face, Result

__all__ = ["DEFAULT_MODEL", "Detection", "EmotionClassifier", "Face", "Framing", "ModelError",
           "Recognizer", "Result", "create_detector", "default_model_path", "probe_video"]

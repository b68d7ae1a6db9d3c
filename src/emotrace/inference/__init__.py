"""Recognition on the plain install (numpy, OpenCV, onnxruntime): never imports torch."""

from emotrace.inference.classifier import (DEFAULT_MODEL, EmotionClassifier, ModelError,
                                           default_model_path)
from emotrace.inference.detectors import Detection, create_detector
from emotrace.inference.framing import Framing
from emotrace.inference.identity import FaceEmbedder, PersonGallery
from emotrace.inference.recognizer import Recognizer, VideoStream
from emotrace.inference.results import Face, Result
from emotrace.inference.scenes import CutDetector
from emotrace.inference.sinks import AnnotatedSink, CsvSink, JsonLinesSink, Sink
from emotrace.inference.sources import SourceError, SourceInfo, expand_sources, open_source

__all__ = ["DEFAULT_MODEL", "AnnotatedSink", "CsvSink", "CutDetector", "Detection",
           "EmotionClassifier", "Face", "FaceEmbedder", "Framing", "JsonLinesSink", "ModelError",
           "PersonGallery", "Recognizer", "Result", "Sink",
           "SourceError", "SourceInfo", "VideoStream", "create_detector", "default_model_path",
           "expand_sources", "open_source"]

"""Recognition on the plain install (numpy, OpenCV, onnxruntime): never imports torch."""

from emotrace.inference.classifier import (DEFAULT_MODEL, EmotionClassifier, ModelError,
                                           default_model_path)
from emotrace.inference.detectors import Detection, create_detector
from emotrace.inference.framing import Framing
from emotrace.inference.recognizer import Recognizer, VideoStream
from emotrace.inference.results import Face, Result
from emotrace.inference.sinks import AnnotatedSink, CsvSink, JsonLinesSink, Sink
from emotrace.inference.sources import SourceError, SourceInfo, expand_sources, open_source

__all__ = ["DEFAULT_MODEL", "AnnotatedSink", "CsvSink", "Detection", "EmotionClassifier", "Face",
           "Framing", "JsonLinesSink", "ModelError", "Recognizer", "Result", "Sink",
           "SourceError", "SourceInfo", "VideoStream", "create_detector", "default_model_path",
           "expand_sources", "open_source"]

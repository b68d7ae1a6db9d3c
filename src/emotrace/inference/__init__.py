"""Recognition on the plain install (numpy, OpenCV, onnxruntime): never imports torch."""

from emotrace.inference.classifier import (DEFAULT_MODEL, EmotionClassifier, ModelError,
                                           default_model_path)

__all__ = ["DEFAULT_MODEL", "EmotionClassifier", "ModelError", "default_model_path"]

"""Datasets, splits and label maps (numpy + OpenCV); the torch transforms live in
:mod:`emotrace.data.transforms` and :mod:`emotrace.data.module`, imported on demand."""

from emotrace.data.datasets import DatasetError, FaceSet, load_dataset, read_face_image
from emotrace.data.labels import EMOTIONS, UnknownEmotionError, emotion_index
from emotrace.data.splits import canonical_split, select_split, split_dataset

__all__ = ["EMOTIONS", "DatasetError", "FaceSet", "UnknownEmotionError", "canonical_split",
           "emotion_index", "load_dataset", "read_face_image", "select_split", "split_dataset"]

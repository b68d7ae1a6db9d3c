"""Backbone registry and factory, heads, and pretrained-weight resolution (needs torch)."""

from emotrace.models.heads import EmotionNet, Head, Preprocess
from emotrace.models.registry import BACKBONES, PlainCNN, create_model, list_models
from emotrace.models.weights import WeightsNotFoundError, hub_checkpoint

__all__ = ["BACKBONES", "EmotionNet", "Head", "PlainCNN", "Preprocess", "WeightsNotFoundError",
           "create_model", "hub_checkpoint", "list_models"]

"""Training: recipes (YAML presets), the Lightning module and callbacks, ``train`` and export.

Needs the ``emotrace[train]`` extra (torch, torchvision, lightning)."""

from emotrace.training.config import TrainConfig, list_presets, load_config
from emotrace.training.fit import load_module, train


def export_run(run_dir, **kwargs):
    """Export a run's best checkpoint to ONNX with its model card (see :mod:`.export`)."""
    from emotrace.training.export import export_run as _export_run

    return _export_run(run_dir, **kwargs)


__all__ = ["TrainConfig", "export_run", "list_presets", "load_config", "load_module", "train"]

"""``train``: one recipe -> a run folder with checkpoints, history, config and an ONNX export."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import (EarlyStopping, LearningRateMonitor, ModelCheckpoint,
                                         TQDMProgressBar)
from lightning.pytorch.loggers import CSVLogger

from emotrace.errors import ConfigError
from emotrace.data.module import FERDataModule
from emotrace.models import BACKBONES
from emotrace.training.callbacks import HistoryWriter, TwoPhaseFinetuning
from emotrace.training.config import TrainConfig
from emotrace.training.module import EmotionModule, network_weights, read_checkpoint
from emotrace.cards import ModelCard, describe_source, is_onnx_source, model_path, source_path
from emotrace.training.onnx_init import start_from_onnx
from emotrace.utils import atomic_path, progress

log = logging.getLogger(__name__)
#: A run started from an exported model: that model, as described when the run started.
PARENT_RECORD = "init_from.json"


def build_datamodule(config: TrainConfig, data: str | None = None) -> FERDataModule:
    datamodule_class = FERDataModule
    if BACKBONES[config.model].external:
        from emotrace.models.dlib import DescriptorDataModule as datamodule_class
    return datamodule_class(data or config.data, image_size=config.image_size,
                         batch_size=config.batch_size, split=config.split,
                         seed=config.split_seed, sample_seed=config.seed,
                         augment=config.augment, scaling=config.scaling, balance=config.balance,
                         subset=config.subset,
                         subset_splits=config.subset_splits, num_workers=config.num_workers)


def teacher_targets(teacher: str, images: np.ndarray, cache: Path) -> np.ndarray:
    """The teacher's raw probabilities (no calibration temperature) for each training face,
    computed once and cached in the run folder (resuming does not recompute them); the cache
    is used only for the same teacher file and the same training faces."""
    from dataclasses import replace

    from emotrace.inference.classifier import EmotionClassifier

    path = model_path(teacher)
    if not path.is_file():
        raise ConfigError(f"teacher model {teacher!r} not found ({path}): give a shipped name "
                          "(fast, accurate) or an exported .onnx file with its card")
    identity = {"teacher": hashlib.sha1(path.read_bytes()).hexdigest(),
                "faces": hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()}
    stamp = cache.with_suffix(".json")
    if cache.exists() and stamp.exists() and json.loads(stamp.read_text()) == identity:
        return np.load(cache)
    card = replace(ModelCard.read(path), calibration=None)  # the raw scores
    classifier = EmotionClassifier(path, card=card)
    log.info("teacher %s: soft targets for %d training faces", path.name, len(images))
    probs = np.concatenate([classifier.predict_faces(images[i:i + 256])
                            for i in progress(range(0, len(images), 256), desc="teacher targets",
                                              total=-(-len(images) // 256), unit="batch")])
    with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
        np.save(handle, probs)
    with atomic_path(stamp) as tmp:
        tmp.write_text(json.dumps(identity))
    return probs


def training_faces(datamodule: FERDataModule, count: int = 2048) -> torch.Tensor:
    """``count`` un-augmented training faces spread over the split (its files are grouped by
    class), as the network sees them."""
    dataset = datamodule.train_eval_dataloader().dataset
    picks = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).astype(int)
    return torch.stack([dataset[int(i)][0] for i in picks])


def _as_saved(config: TrainConfig) -> dict:
    return yaml.safe_load(yaml.safe_dump(config.to_dict()))


RESUMABLE_CHANGES = ("epochs", "threads", "num_workers")


def _recipe(values: dict) -> dict:
    """A run may be resumed with more (or fewer) epochs, or with other CPU threads / loader
    workers (how it runs, not what it learns); every other option must match."""
    return {k: v for k, v in values.items() if k not in RESUMABLE_CHANGES}


def train(config: TrainConfig, run_dir: str | Path, resume: bool = True,
          progress_bar: bool = True) -> Path:
    """Fit ``config`` into ``run_dir``; continue from ``last.ckpt`` there when ``resume``.

    Writes ``config.yaml``, ``history.csv``, ``best.ckpt`` (highest val accuracy), ``last.ckpt``
    (every epoch) and Lightning's ``metrics.csv``. Returns the best checkpoint's path.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    last = run_dir / "last.ckpt"
    if resume and last.exists() and saved.exists():
        # options added since the run started take their defaults; tuples -> lists, as saved
        previous = _as_saved(TrainConfig(**yaml.safe_load(saved.read_text())))
        current = _as_saved(config)
        if _recipe(previous) != _recipe(current):
            raise ConfigError(f"{run_dir} holds a run with a different config; use another --out "
                             "or --no-resume to start over")
        if previous["epochs"] != config.epochs and config.scheduler == "onecycle":
            raise ConfigError(f"{run_dir}: a one-cycle schedule cannot change its length on resume "
                             f"({previous['epochs']} -> {config.epochs} epochs); keep "
                             f"--epochs {previous['epochs']} or start over with --no-resume")
    from_onnx = is_onnx_source(config.init_from) and not (resume and last.exists())
    if from_onnx:
        source_path(config.init_from)  # a missing file fails now, not after the teacher's targets
    saved.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    if config.threads:
        torch.set_num_threads(config.threads)
    L.seed_everything(config.seed, workers=True, verbose=False)

    datamodule = build_datamodule(config)
    datamodule.setup()
    if config.teacher:
        datamodule.soft_targets = teacher_targets(config.teacher, datamodule.parts["train"].images,
                                                  run_dir / "teacher-train.npy")
    module = EmotionModule(config.to_dict(), class_weights=datamodule.loss_weights)
    if from_onnx:
        start_from_onnx(module.net, config.init_from, config.model, training_faces(datamodule))
        # recorded now: the file may change (a new release of fast) or move before export
        with atomic_path(run_dir / PARENT_RECORD) as tmp:
            tmp.write_text(json.dumps(describe_source(config.init_from), indent=2))
    callbacks: list[L.Callback] = [
        ModelCheckpoint(run_dir, filename="best", monitor="val_acc", mode="max",
                        enable_version_counter=False),
        # the last epoch, every epoch: Lightning 2.6's save_last only rewrites last.ckpt when
        # the best one improves, which would resume (and "keep the last epoch") from an old one
        ModelCheckpoint(run_dir, filename="last", monitor=None, save_top_k=1,
                        enable_version_counter=False),
        HistoryWriter(run_dir / "history.csv", config.freeze_epochs,
                      train_eval=datamodule.train_eval_dataloader() if config.measure_train else None,
                      val=datamodule.val_dataloader()),
        LearningRateMonitor("epoch"),
    ]
    if progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=20))
    if config.freeze_epochs:
        callbacks.append(TwoPhaseFinetuning(config.freeze_epochs, config.unfreeze_top,
                                            config.phase2_lr_factor))
    if config.early_stopping:
        callbacks.append(EarlyStopping("val_acc", mode="max", patience=config.early_stopping))
    trainer = L.Trainer(max_epochs=config.epochs, accelerator="auto", devices=1,
                        callbacks=callbacks, default_root_dir=run_dir,
                        logger=CSVLogger(run_dir, name="", version="logs"),
                        enable_progress_bar=progress_bar, enable_model_summary=False,
                        num_sanity_val_steps=0, deterministic=False, log_every_n_steps=50)
    trainer.fit(module, datamodule=datamodule,
                ckpt_path=str(last) if resume and last.exists() else None)
    return run_dir / "best.ckpt"


def load_module(checkpoint: str | Path) -> EmotionModule:
    """An :class:`EmotionModule` from a checkpoint, weights-only (no ImageNet file needed)."""
    state = read_checkpoint(checkpoint)
    saved = state["hyper_parameters"]["config"]
    # the checkpoint holds every weight; only external descriptors (dlib) stay "pretrained"
    config = dict(saved, pretrained=BACKBONES[saved["model"]].external, init_from=None)
    module = EmotionModule(config)
    module.net.load_state_dict(network_weights(state))
    module.config = TrainConfig(**state["hyper_parameters"]["config"])
    return module.eval()

"""Our two callbacks: two-phase fine-tuning and the per-epoch history file."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn

from emotrace.evaluation.convergence import read_history
from emotrace.utils import atomic_path

HISTORY_FIELDS = ("epoch", "phase", "train_loss", "train_acc", "train_eval_loss", "train_eval_acc",
                  "val_loss", "val_acc", "lr", "epoch_time_s", "elapsed_s")


class TwoPhaseFinetuning(BaseFinetuning):
    """Lightning's ``BackboneFinetuning`` recipe for our backbones.

    Phase 1 (``freeze_epochs`` epochs): the backbone is frozen, batch norm included
    (``train_bn=False``; frozen batch-norm layers run in inference mode, so their ImageNet
    statistics do not move); only the head trains, at the configured LR. Phase 2: the top
    ``unfreeze_top`` backbone blocks (all if None) join the optimizer as a new parameter group
    at ``lr_factor`` x the configured LR; the head's group keeps its own rate, and their batch
    norm trains (training mode, running statistics updated) as ``train_bn=True`` says.
    """

    def __init__(self, freeze_epochs: int, unfreeze_top: int | None, lr_factor: float) -> None:
        super().__init__()
        self.freeze_epochs, self.unfreeze_top, self.lr_factor = freeze_epochs, unfreeze_top, lr_factor

    def _top_blocks(self, pl_module: L.LightningModule) -> list[nn.Module]:
        blocks = pl_module.net.blocks
        return list(blocks[-self.unfreeze_top:] if self.unfreeze_top else blocks)

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        self.freeze(pl_module.net.backbone, train_bn=False)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer) -> None:
        if epoch == self.freeze_epochs:
            self.unfreeze_and_add_param_group(self._top_blocks(pl_module), optimizer,
                                              lr=pl_module.config.lr * self.lr_factor,
                                              train_bn=True)
        elif epoch > self.freeze_epochs:  # a resumed run: its parameter groups came back
            self.make_trainable(self._top_blocks(pl_module))
        # Called at the start of every training epoch. Frozen batch norm runs in inference mode;
        # unfrozen batch norm must be put back in training mode each epoch: phase 1 left it in
        # inference mode and Lightning restores every module's mode after validation, so
        # without this its running statistics never moved in phase 2 (issue 28).
        for module in pl_module.net.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train(any(p.requires_grad for p in module.parameters()))


class HistoryWriter(L.Callback):
    """Appends one row per epoch to ``history.csv`` (train/val loss and accuracy, LR, time).

    ``train_loss``/``train_acc`` are the optimised running values (augmented batches, label
    smoothing). With a ``train_eval`` loader the training split is also measured like validation
    after every epoch (``train_eval_loss``/``train_eval_acc``: inference mode, no augmentation,
    plain cross-entropy), and an epoch-0 row holds both splits before any training, so that
    learning-curve rates compare like with like and have a starting point.
    On resume, rows of epochs that will be re-run are dropped first.
    """

    def __init__(self, path: str | Path, freeze_epochs: int = 0, train_eval=None, val=None) -> None:
        self.path, self.freeze_epochs = Path(path), freeze_epochs
        self.train_eval, self.val = train_eval, val
        self._epoch_start = 0.0

    def _rows_before(self, epoch: int) -> list[dict]:
        return [r for r in read_history(self.path) if r["epoch"] < epoch] if self.path.exists() else []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.train_eval is None or trainer.current_epoch > 0:
            return
        nan = float("nan")
        train, val = pl_module.measure(self.train_eval), pl_module.measure(self.val)
        self._write([{"epoch": 0, "phase": 1, "train_loss": nan, "train_acc": nan,
                      "train_eval_loss": train["loss"], "train_eval_acc": train["acc"],
                      "val_loss": val["loss"], "val_acc": val["acc"],
                      "lr": trainer.optimizers[0].param_groups[0]["lr"], "epoch_time_s": 0.0,
                      "elapsed_s": 0.0}])

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        rows = self._rows_before(epoch)
        metrics = trainer.callback_metrics
        nan = float("nan")
        epoch_time = time.time() - self._epoch_start  # training + validation, not this extra pass
        train = pl_module.measure(self.train_eval) if self.train_eval is not None else {}
        rows.append({"epoch": epoch,
                     "phase": 2 if self.freeze_epochs and epoch > self.freeze_epochs else 1,
                     **pl_module.train_epoch_metrics,
                     "train_eval_loss": train.get("loss", nan),
                     "train_eval_acc": train.get("acc", nan),
                     "val_loss": float(metrics.get("val_loss", nan)),
                     "val_acc": float(metrics.get("val_acc", nan)),
                     "lr": trainer.optimizers[0].param_groups[0]["lr"],
                     "epoch_time_s": round(epoch_time, 1),
                     "elapsed_s": round((rows[-1]["elapsed_s"] if rows else 0.0) + epoch_time, 1)})
        self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, HISTORY_FIELDS, restval=float("nan"))
            writer.writeheader()
            writer.writerows(rows)

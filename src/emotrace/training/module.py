"""The Lightning module: loss, metrics and optimiser/scheduler choice for one network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from emotrace.errors import ConfigError, NotFoundError
from emotrace.models import create_model
from emotrace.training.config import TrainConfig
from emotrace.cards import is_onnx_source


def read_checkpoint(path: str | Path, role: str = "checkpoint", hint: str = "") -> dict[str, Any]:
    """One of our Lightning checkpoints (hyper-parameters and ``state_dict``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise NotFoundError(f"{role} not found: {path}{hint}") from None


def network_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The :class:`~emotrace.models.EmotionNet` weights of a checkpoint."""
    state = checkpoint["state_dict"]
    return {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}


class EmotionModule(L.LightningModule):
    """Wraps an :class:`~emotrace.models.EmotionNet`; logs ``train_*``/``val_*`` loss and acc."""

    def __init__(self, config: dict[str, Any], class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = TrainConfig(**config)
        c = self.config
        self.net = create_model(c.model, pretrained=c.pretrained and not c.init_from,
                                weights=c.weights, head_hidden=c.head_hidden, dropout=c.dropout,
                                batch_norm=c.batch_norm)
        if c.init_from and not is_onnx_source(c.init_from):  # an .onnx file: see fit.train
            hint = ("; train that run first (the preset's description names it) or point "
                    "--set init_from=... at another run's best.ckpt")
            checkpoint = read_checkpoint(c.init_from, "init_from checkpoint", hint)
            self.net.load_state_dict(network_weights(checkpoint))
        # channels-last convolutions train ~1.5x faster on CPU (measured on MobileNetV2, 96 px)
        self.net.to(memory_format=torch.channels_last)
        self.loss = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=c.label_smoothing)
        self.register_buffer("_train_sums", torch.zeros(3), persistent=False)  # loss, correct, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_train_epoch_start(self) -> None:
        self._train_sums.zero_()

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        images, labels = batch[:2]
        logits = self.net(images.contiguous(memory_format=torch.channels_last))
        loss = self.loss(logits, labels)
        if len(batch) == 3:  # distillation: the teacher's probabilities ride along
            loss = self._distilled(loss, logits, batch[2])
        correct = (logits.argmax(1) == labels).sum()
        self._train_sums += torch.stack([loss.detach() * len(labels), correct, torch.tensor(len(labels))])
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def _distilled(self, label_loss: torch.Tensor, logits: torch.Tensor,
                   teacher_probs: torch.Tensor) -> torch.Tensor:
        """Hinton et al.'s loss: (1 − w) · label loss + w · T² · KL(teacher_T ‖ student_T),
        both distributions softened by temperature T (T² keeps the gradients' scale)."""
        c = self.config
        t = c.distill_temperature
        teacher = torch.softmax(torch.log(teacher_probs.clamp_min(1e-8)) / t, dim=1)
        student = torch.log_softmax(logits / t, dim=1)
        soft = nn.functional.kl_div(student, teacher, reduction="batchmean") * t * t
        return (1 - c.distill_weight) * label_loss + c.distill_weight * soft

    @property
    def train_epoch_metrics(self) -> dict[str, float]:
        loss, correct, n = self._train_sums.tolist()
        return {"train_loss": loss / max(n, 1), "train_acc": correct / max(n, 1)}

    @torch.no_grad()
    def measure(self, loader: Any) -> dict[str, float]:
        """Plain cross-entropy and accuracy of the network in inference mode over ``loader``,
        as validation measures them. Each submodule's train/eval mode is restored afterwards
        (batch norm frozen by two-phase fine-tuning stays in inference mode)."""
        modes = {module: module.training for module in self.net.modules()}
        self.net.eval()
        loss, correct, n = 0.0, 0, 0
        try:
            for images, labels in loader:
                images, labels = images.to(self.device), labels.to(self.device)
                logits = self.net(images)
                loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
                correct += int((logits.argmax(1) == labels).sum())
                n += len(labels)
        finally:
            for module, mode in modes.items():
                module.train(mode)
        return {"loss": loss / max(n, 1), "acc": correct / max(n, 1)}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        images, labels = batch
        logits = self.net(images)
        # Plain CE (no smoothing/weights) so val loss is comparable across recipes.
        self.log("val_loss", nn.functional.cross_entropy(logits, labels), on_epoch=True,
                 prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == labels).float().mean(), on_epoch=True,
                 prog_bar=True)

    def configure_optimizers(self) -> Any:
        c = self.config
        # Frozen parameters (two-phase fine-tuning) join later as their own group.
        params = [p for p in self.parameters() if p.requires_grad]
        if c.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        elif c.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        elif c.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, lr=c.lr, momentum=c.momentum,
                                        weight_decay=c.weight_decay, nesterov=True)
        else:
            raise ConfigError(f"unknown optimizer {c.optimizer!r}; use adam, adamw or sgd")
        if c.scheduler == "none":
            return optimizer
        if c.scheduler == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=c.lr, total_steps=self.trainer.estimated_stepping_batches,
                pct_start=0.2)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if c.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.epochs)
            return {"optimizer": optimizer, "lr_scheduler": scheduler}
        if c.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=0.5, patience=c.plateau_patience)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "monitor": "val_acc"}}
        raise ConfigError(f"unknown scheduler {c.scheduler!r}; use onecycle, cosine, plateau or none")

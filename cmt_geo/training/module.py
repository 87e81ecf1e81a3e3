"""The LightningModule that trains a segmentation model: augmentation on the device, loss, validation mIoU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.card import ModelCard
from cmt_geo.data.augment import GpuAugmentation
from cmt_geo.errors import ConfigError
from cmt_geo.evaluation.metrics import SegmentationScores, scores
from cmt_geo.models.encoders import FeatureLevel
from cmt_geo.models.segmentation import SegmentationModel
from cmt_geo.training.config import TrainConfig
from cmt_geo.training.losses import SegmentationLoss
from cmt_geo.training.metrics import ConfusionAccumulator
from cmt_geo.training.optim import build_optimizer, build_scheduler


class AuxiliaryHeads(nn.Module):
    """Deep supervision: class logits from encoder features, upsampled to the input (used in training only; the
    saved model never holds them).

    Args:
        feature_info: the encoder's feature levels.
        num_classes: output classes.
        levels: which feature levels get a head (1 and 2: strides 8 and 16).
        width: channels of each head's hidden layer.
    """

    def __init__(
        self, feature_info: Sequence[FeatureLevel], num_classes: int, levels: Sequence[int] = (1, 2), width: int = 64
    ) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.strides = tuple(feature_info[level].stride for level in self.levels)
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(feature_info[level].channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, num_classes, 1),
            )
            for level in self.levels
        )

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> list[Tensor]:
        """(B, K, H, W) logits of each head, for an input of `size` (features come from the padded input)."""
        outputs = []
        for head, level, stride in zip(self.heads, self.levels, self.strides, strict=True):
            logits = head(features[level])
            padded = (logits.shape[-2] * stride, logits.shape[-1] * stride)
            logits = F.interpolate(logits, size=padded, mode="bilinear", align_corners=False)
            outputs.append(logits[..., : size[0], : size[1]])
        return outputs


class SegmentationTask(pl.LightningModule):
    """Trains `net` on compact batches: uint8 images are augmented and normalized where the batch lives.

    Args:
        net: the model from `create_model` (what checkpoints save).
        card: its card (normalization, classes).
        config: the training config.
        class_weights: one loss weight per class, or None.
        mean_over: classes the validation mIoU averages (the dataset's protocol); all when None.
        lr: the peak learning rate (config.optim.lr, lowered for fine-tuning).
        freeze_encoder: keep the encoder's weights and normalization statistics fixed.
    """

    def __init__(
        self,
        net: SegmentationModel,
        card: ModelCard,
        config: TrainConfig,
        *,
        class_weights: Sequence[float] | None = None,
        mean_over: Sequence[int] | None = None,
        lr: float | None = None,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        self.net, self.card, self.config = net, card, config
        self.loss = SegmentationLoss(config.loss, class_weights)
        self.aux = AuxiliaryHeads(net.feature_info, card.num_classes) if config.loss.deep_supervision else None
        self.augment = GpuAugmentation(config.augment, card.normalization)
        self.confusion = ConfusionAccumulator(card.num_classes)
        self.mean_over = None if mean_over is None else tuple(mean_over)
        self.lr = config.optim.lr if lr is None else lr
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            net.encoder.requires_grad_(False)
            net.encoder.eval()  # Lightning keeps each submodule's mode; `train` below keeps it too
        self.val_scores: SegmentationScores | None = None
        #: Where the last good checkpoint is, for the message when the loss diverges (set by `RunCheckpoints`).
        self.last_checkpoint: str | None = None
        self._features: list[Tensor] | None = None
        if self.aux is not None:
            net.encoder.register_forward_hook(self._keep_features)
        # not a submodule: the compiled wrapper shares `net`'s weights and must not be saved twice
        self.__dict__["_run"] = torch.compile(net) if config.trainer.compile else net

    def _keep_features(self, module: nn.Module, inputs: Any, output: list[Tensor]) -> None:
        if self.training:
            self._features = output

    def forward(self, image: Tensor) -> Tensor:
        """(B, C, H, W) normalized float images -> (B, K, H, W) logits."""
        run: nn.Module = self.__dict__["_run"]
        return run(image)

    def train(self, mode: bool = True) -> SegmentationTask:
        """Switch training mode; a frozen encoder stays in eval mode (its batch-norm statistics do not move)."""
        super().train(mode)
        if self.freeze_encoder:
            self.net.encoder.eval()
        return self

    def _step_seed(self, batch_index: int) -> int:
        """A seed for this batch alone: augmentation and dropout do not depend on what ran before, so a resumed
        run draws what an uninterrupted one would."""
        entropy = [self.config.trainer.seed, self.current_epoch, batch_index, self.global_rank]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        seed = self._step_seed(batch_idx)
        torch.manual_seed(seed)
        image, mask = self.augment(batch["image"], batch["mask"], generator=torch.Generator().manual_seed(seed))
        self._features = None
        logits = self(image)
        loss = self.loss(logits, mask)
        if self.aux is not None and self._features is not None:
            for aux_logits in self.aux(self._features, tuple(mask.shape[-2:])):
                loss = loss + self.config.loss.aux_weight * self.loss(aux_logits, mask)
            self._features = None
        self._check_finite(loss)
        self.log("train/loss", loss, batch_size=image.shape[0])
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=image.shape[0])
        return loss

    def _check_finite(self, loss: Tensor) -> None:
        """Stop, on every rank together, when the loss is NaN or infinite (before it reaches the weights)."""
        finite = bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            return
        kept = (
            f"the last good checkpoint is {self.last_checkpoint}"
            if self.last_checkpoint
            else "no checkpoint had been written yet"
        )
        value, step, epoch = float(loss.detach()), self.global_step, self.current_epoch
        raise ConfigError(
            f"the training loss became {value} at step {step} (epoch {epoch}), so training stopped; {kept}. Lower "
            "optim.lr, clip gradients or train in full precision (e.g. --set trainer.gradient_clip_val=1.0 --set "
            "trainer.precision=32; Python: config.override([...])) and train again"
        )

    def on_validation_epoch_start(self) -> None:
        self.confusion.reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        image = self.card.normalization.normalize(batch["image"])
        predicted = self(image).argmax(dim=1)
        keep = None
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "distinct"):
            keep = datamodule.distinct(batch_idx, image.shape[0], image.device)
        self.confusion.update(predicted, batch["mask"], keep)

    def on_validation_epoch_end(self) -> None:
        matrix = self.confusion.compute(self.device)  # summed over every rank
        result = scores(matrix, self.mean_over)
        self.val_scores = result
        values = {"val/miou": result.miou, "val/mean_f1": result.mean_f1, "val/oa": result.oa}
        values["val/pixels"] = float(matrix.sum())
        for name, iou in zip(self.card.class_names, result.iou, strict=True):
            values[f"val/iou_{name}"] = iou
        self.log_dict(values)

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self, self.config.optim, self.lr)
        total = self.trainer.estimated_stepping_batches
        scheduler = build_scheduler(optimizer, self.config.schedule, int(min(total, 2**31)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

"""The Lightning data module: random training patches (resumable mid-epoch) and a grid of validation patches."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Sampler

from cmt_geo.data.base import PatchWindow, TiledSegmentationDataset
from cmt_geo.data.samplers import GridPatchSampler, RandomPatchSampler
from cmt_geo.errors import ConfigError
from cmt_geo.training.config import DataSection
from cmt_geo.training.datasets import SplitData, has_validation, load_split

logger = logging.getLogger(__name__)


class ResumableSampler(Sampler[PatchWindow]):
    """A patch sampler that can skip the patches a resumed run already trained on in its current epoch.

    Args:
        sampler: the epoch-seeded sampler (its `set_epoch` is forwarded).
    """

    def __init__(self, sampler: RandomPatchSampler) -> None:
        self.sampler = sampler
        self.epoch = 0
        self.resume_epoch, self.skip = -1, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (Lightning calls this)."""
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def resume(self, epoch: int, skip: int) -> None:
        """In epoch `epoch`, leave out the first `skip` patches."""
        self.resume_epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[PatchWindow]:
        windows = iter(self.sampler)
        if self.epoch == self.resume_epoch:
            return itertools.islice(windows, self.skip, None)
        return windows


class ResumableLoader(DataLoader[Any]):
    """A DataLoader whose state (epoch and batches done in it) Lightning saves with the checkpoint and gives back on
    resume, so a resumed run trains on exactly the batches an uninterrupted run would.

    Args:
        position: () -> (epoch, batches done in the epoch), read when a checkpoint is saved.
        sampler: the training sampler.
        **options: DataLoader arguments.
    """

    def __init__(self, *args: Any, position: Callable[[], tuple[int, int]], **options: Any) -> None:
        super().__init__(*args, **options)
        self.position = position

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.position()
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        if isinstance(sampler, ResumableSampler) and self.batch_size is not None:
            sampler.resume(state["epoch"], state["batches"] * self.batch_size)


class SegmentationDataModule(pl.LightningDataModule):
    """Training and validation data of a config: random patches to train on, a grid of patches to validate on.

    The datasets are built when the module is made, so a missing dataset fails before any model is built.

    Args:
        config: the data section.
        seed: seeds the training patches (each epoch draws its own).
    """

    def __init__(self, config: DataSection, seed: int) -> None:
        super().__init__()
        self.config, self.seed = config, seed
        self.train = load_split(config, "train")
        self.val = load_split(config, "val") if has_validation(config) else None
        self.val_sampler: GridPatchSampler | None = None
        logger.info(
            "training on %d tile(s) of %s%s",
            len(self.train.dataset.tiles),
            config.dataset,
            "" if self.val is None else self._describe_validation(self.val),
        )

    @staticmethod
    def _describe_validation(val: SplitData) -> str:
        if val.blocks is not None:
            return f", validating on {len(val.blocks.boxes)} block(s) inside them"
        return f", validating on {len(val.dataset.tiles)} other tile(s)"

    @property
    def dataset(self) -> TiledSegmentationDataset:
        """The training dataset."""
        return self.train.dataset

    def _loader_options(self) -> dict[str, Any]:
        workers = self.config.num_workers
        cuda = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        return {"num_workers": workers, "pin_memory": cuda, "persistent_workers": workers > 0}

    def _position(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        progress: Any = trainer.fit_loop.epoch_loop.batch_progress.current  # a tracker with `processed`
        return trainer.current_epoch, int(progress.processed)

    def train_dataloader(self) -> ResumableLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        total = self.config.samples_per_epoch
        sampler = RandomPatchSampler(
            self.train.dataset,
            self.config.patch_size,
            length=None if total is None else max(1, math.ceil(total / world)),
            seed=self.seed,
            rank=rank,
            world_size=world,
            exclude=self.train.blocks.exclusion() if self.train.blocks is not None else (),
        )
        if len(sampler) < self.config.batch_size:
            raise ConfigError(
                f"an epoch has {len(sampler)} patches per process, fewer than one batch of {self.config.batch_size}; "
                "raise data.samples_per_epoch or lower data.batch_size"
            )
        return ResumableLoader(
            self.train.dataset,
            batch_size=self.config.batch_size,
            sampler=ResumableSampler(sampler),
            drop_last=True,
            position=self._position,
            **self._loader_options(),
        )

    def val_dataloader(self) -> DataLoader[Any]:
        if self.val is None:
            return DataLoader(self.train.dataset, sampler=[])  # no batches
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        self.val_sampler = GridPatchSampler(
            self.val.dataset,
            self.config.patch_size,
            rank=rank,
            world_size=world,
            even_shards=True,
            within=self.val.blocks.boxes if self.val.blocks is not None else None,
        )
        if not self.val_sampler.distinct:
            logger.warning(
                "the validation split holds no data (its blocks lie in no-data areas); carve other blocks with "
                "another data.split_seed (--set data.split_seed=1)"
            )
        return DataLoader(
            self.val.dataset,
            batch_size=self.config.val_batch_size or self.config.batch_size,
            sampler=self.val_sampler,
            **self._loader_options(),
        )

    def distinct(self, batch_index: int, size: int, device: torch.device) -> torch.Tensor:
        """(size,) bool: which samples of validation batch `batch_index` are not repeats (DDP pads every rank's
        share of the grid to the same length by repeating windows; repeats must not be counted twice)."""
        sampler = self.val_sampler
        if sampler is None:
            return torch.ones(size, dtype=torch.bool, device=device)
        first = batch_index * (self.config.val_batch_size or self.config.batch_size)
        local = torch.arange(first, first + size, device=device)
        return sampler.rank + local * sampler.world_size < sampler.distinct

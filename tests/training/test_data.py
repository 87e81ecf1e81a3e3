"""The data module: compact training batches, a validation grid, and a sampler that resumes mid-epoch."""

from __future__ import annotations

from collections.abc import Callable

from cmt_geo.data import RandomPatchSampler
from cmt_geo.training.config import TrainConfig
from cmt_geo.training.data import ResumableSampler, SegmentationDataModule


def test_loaders_give_compact_batches(fast_config: Callable[..., TrainConfig]) -> None:
    data = SegmentationDataModule(fast_config().data, seed=0)
    batch = next(iter(data.train_dataloader()))
    assert not batch["image"].dtype.is_floating_point  # compact: converted where the model runs
    assert tuple(batch["mask"].shape) == (2, 64, 64)
    assert len(data.val_dataloader()) >= 1
    assert data.distinct(0, 2, batch["image"].device).all()


def test_resumable_sampler_skips_only_in_the_resumed_epoch(fast_config: Callable[..., TrainConfig]) -> None:
    data = SegmentationDataModule(fast_config("data.val_fraction=0").data, seed=0)
    sampler = ResumableSampler(RandomPatchSampler(data.dataset, 64, length=6, seed=2))
    sampler.set_epoch(1)
    whole = list(sampler)
    sampler.resume(1, 4)
    assert list(sampler) == whole[4:]
    sampler.set_epoch(2)
    assert len(list(sampler)) == len(sampler) == 6

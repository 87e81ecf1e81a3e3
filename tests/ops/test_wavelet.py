"""The stateless wavelet transforms: filter banks, the Haar fast path and the convolution path."""

from __future__ import annotations

import pytest
import pywt
import torch

from cmt_geo.errors import ConfigError
from cmt_geo.ops.wavelet import dwt2, haar_dwt2, haar_idwt2, idwt2, wavelet_filter_bank


def test_haar_fast_path_matches_pywavelets() -> None:
    image = torch.randn(6, 10, dtype=torch.float64)
    low, (horizontal, vertical, diagonal) = pywt.dwt2(image.numpy(), "db1", mode="periodization")
    bands = haar_dwt2(image[None, None])[0, 0]
    for ours, theirs in zip(bands, (low, horizontal, vertical, diagonal), strict=True):
        torch.testing.assert_close(ours, torch.from_numpy(theirs))


@pytest.mark.parametrize("wavelet", ["db2", "sym4", "bior2.2"])
def test_convolution_path_matches_pywavelets_periodization(wavelet: str) -> None:
    analysis, synthesis = wavelet_filter_bank(wavelet)
    image = torch.randn(16, 20, dtype=torch.float64)
    low, details = pywt.dwt2(image.numpy(), wavelet, mode="periodization")
    for ours, theirs in zip(dwt2(image[None, None], analysis)[0, 0], (low, *details), strict=True):
        torch.testing.assert_close(ours, torch.from_numpy(theirs))
    bands = torch.randn(4, 8, 10, dtype=torch.float64)
    expected = pywt.idwt2((bands[0].numpy(), tuple(bands[1:].numpy())), wavelet, mode="periodization")
    torch.testing.assert_close(idwt2(bands[None, None], synthesis)[0, 0], torch.from_numpy(expected))


def test_band_order_is_ll_hl_lh_hh_with_the_first_letter_along_h() -> None:
    profile = torch.tensor([1.0, -1.0, 3.0, 0.0], dtype=torch.float64)
    stripes = {1: profile[:, None].expand(4, 4), 2: profile[None, :].expand(4, 4)}  # varies along H / along W
    for band, image in stripes.items():
        bands = haar_dwt2(image[None, None])[0, 0]
        assert [bool(b.any()) for b in bands] == [True, band == 1, band == 2, False]
        detail = pywt.dwt2(image.numpy(), "db1")[1][band - 1]  # cH for band 1, cV for band 2
        torch.testing.assert_close(bands[band], torch.from_numpy(detail))


def test_haar_fast_path_equals_the_convolution_path() -> None:
    x = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    analysis, synthesis = wavelet_filter_bank("db1")
    torch.testing.assert_close(haar_dwt2(x), dwt2(x, analysis))
    bands = torch.randn(2, 3, 4, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(haar_idwt2(bands), idwt2(bands, synthesis))


@pytest.mark.parametrize("wavelet", ["db1", "haar", "db2", "sym4", "coif1", "bior2.2"])
def test_inverse_dwt_of_dwt_is_identity(wavelet: str) -> None:
    analysis, synthesis = wavelet_filter_bank(wavelet)
    x = torch.randn(2, 3, 16, 20, dtype=torch.float64)
    bands = dwt2(x, analysis)
    assert bands.shape == (2, 3, 4, 8, 10)
    torch.testing.assert_close(idwt2(bands, synthesis), x, atol=1e-9, rtol=0)


def test_dwt_preserves_energy_for_orthogonal_wavelets() -> None:
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    analysis, _ = wavelet_filter_bank("db2")
    torch.testing.assert_close(dwt2(x, analysis).square().sum(), x.square().sum())


def test_long_wavelets_on_tiny_maps_are_a_config_error() -> None:
    analysis, _ = wavelet_filter_bank("sym4")  # 8 taps: 3 pixels of periodic border
    with pytest.raises(ConfigError, match="8-tap wavelet needs maps of at least 3 pixels per side, got 2x4"):
        dwt2(torch.randn(1, 1, 2, 4), analysis)


def test_unknown_wavelet_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown wavelet 'nope'"):
        wavelet_filter_bank("nope")


def test_haar_transforms_keep_channels_last_without_changing_values() -> None:
    x = torch.randn(2, 5, 8, 12)
    channels_last = x.to(memory_format=torch.channels_last)
    bands = haar_dwt2(channels_last)
    torch.testing.assert_close(bands, haar_dwt2(x), rtol=0, atol=0)
    assert bands.reshape(2, 20, 4, 6).is_contiguous(memory_format=torch.channels_last)  # a view, no copy
    restored = haar_idwt2(bands)
    assert restored.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(restored, x)

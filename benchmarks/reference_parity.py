"""Parity of `cmt_unet_base` with the public reference CMT-UNet: parameters, converted weights, logits.

Builds the reference's `CMT_UNet` (random weights, no pretrained download) from a checkout of XUE-YYC/CMT-UNet,
converts its state dict with `cmt_geo.models.convert_reference_state_dict` into `cmt_unet_base`, and compares both
models' logits on the same random batch in eval mode. Prints one JSON object:
  {"reference_trainable_params", "reference_all_params", "ours_params", "max_abs_diff", "relative_diff",
   "argmax_agreement", "size", "batch", "scan_backend"}
relative_diff = max|ours - reference| / max|reference|. With --time N, a second object times one image forward
(median of N; the two models take turns, each timed right after an untimed run of its own) of the reference as it
runs on a CPU (its scan as mamba-ssm's pure-torch `selective_scan_ref`, i.e. --scan-backend ref) and of cmt-geo's
`optimize_for_inference` model with its fastest scan here, same weights:
  {"threads", "torch_cpu_capability", "reference_ms", "ours_ms", "speedup"}
and with --compile also that model under `compile_for_inference` (`cmtgeo predict --compile`; compiled before the
timed runs, a few minutes on a CPU) in the same rotation, and its logits' relative difference to the reference's:
  {..., "ours_compiled_ms", "speedup_compiled", "compiled_relative_diff"}

The reference's modules import packages a CPU machine lacks or that it does not use; this script stands in for
them without touching the checkout: mamba-ssm's `selective_scan_fn` (its CUDA kernel) becomes cmt-geo's
`selective_scan`, monai's unused blocks become placeholders, and its ECA layer (published only as a .pyc) becomes
cmt-geo's `EfficientChannelAttention` under the reference's name. It needs einops, timm and pytorch_wavelets
(`pip install pytorch_wavelets`; it imports pkg_resources, so setuptools < 81).

    $ git clone https://github.com/XUE-YYC/CMT-UNet /tmp/CMT-UNet
    $ .venv/bin/python benchmarks/reference_parity.py --reference-dir /tmp/CMT-UNet [--size 256] [--batch 2]
    $ .venv/bin/python benchmarks/reference_parity.py --reference-dir /tmp/CMT-UNet --scan-backend ref --time 3
    $ .venv/bin/python benchmarks/reference_parity.py --reference-dir /tmp/CMT-UNet --scan-backend ref --time 7 \
        --batch 1 --compile
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import statistics
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any, cast

import torch

from cmt_geo.layers.attention import EfficientChannelAttention
from cmt_geo.models import compile_for_inference, create_model, optimize_for_inference
from cmt_geo.models.reference import convert_reference_state_dict, reference_config
from cmt_geo.ops.selective_scan import selective_scan, selective_scan_ref


def _stand_ins(scan_backend: str) -> None:
    """Register stand-ins for the modules named in the module docstring (also where the real ones are installed)."""

    def selective_scan_fn(*args: Any, return_last_state: bool = False, **kwargs: Any) -> torch.Tensor:
        if return_last_state:
            raise NotImplementedError("the reference's CMT-UNet never asks for the last state")
        return cast(torch.Tensor, selective_scan(*args, backend=scan_backend, **kwargs))

    class ECALayer(EfficientChannelAttention):
        """cmt-geo's ECA under the reference's constructor (channel, k_size) and attribute names."""

        def __init__(self, channel: int, k_size: int = 3) -> None:
            super().__init__(k_size)

    modules: dict[str, dict[str, Any]] = {
        "mamba_ssm": {},
        "mamba_ssm.ops": {},
        "mamba_ssm.ops.selective_scan_interface": {
            "selective_scan_fn": selective_scan_fn,
            "selective_scan_ref": selective_scan_ref,
        },
        "monai": {},
        "monai.networks": {},
        "monai.networks.blocks": {},
        "monai.networks.blocks.dynunet_block": {"UnetOutBlock": None},
        "monai.networks.blocks.unetr_block": {"UnetrBasicBlock": None, "UnetrUpBlock": None},
        "model.ECA": {"ECA_layer": ECALayer},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules[name] = module


def build_reference(reference_dir: Path, num_classes: int, scan_backend: str) -> torch.nn.Module:
    """The reference's CMT_UNet with random weights (pretrained=False)."""
    code = reference_dir / "CMT_UNet"
    if not (code / "model" / "CMT_UNet.py").is_file():
        raise SystemExit(f"{reference_dir} is not a checkout of XUE-YYC/CMT-UNet (no CMT_UNet/model/CMT_UNet.py)")
    sys.path[:0] = [str(code / "model"), str(code)]
    _stand_ins(scan_backend)
    if importlib.util.find_spec("pytorch_wavelets") is None:
        raise SystemExit("the reference needs pytorch_wavelets: pip install pytorch_wavelets 'setuptools<81'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference_module = importlib.import_module("model.CMT_UNet")
    model: torch.nn.Module = reference_module.CMT_UNet(num_classes=num_classes, pretrained=False)
    return model


def _median_ms(models: list[torch.nn.Module], x: torch.Tensor, repeats: int) -> list[float]:
    """Median eval forward time of `x` through each model, in ms. The models take turns, so that a change in the
    machine's load falls on all of them, and each timed forward follows an untimed one of the same model, so that
    each is timed warm (its weights in the caches as far as they fit), as when it runs alone."""
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for _ in range(repeats):
            for model, runs in zip(models, times, strict=True):
                model(x)
                start = time.perf_counter()
                model(x)
                runs.append(time.perf_counter() - start)
    return [round(statistics.median(runs) * 1000, 1) for runs in times]


def compare(
    reference_dir: Path,
    size: int,
    batch: int,
    num_classes: int,
    scan_backend: str,
    repeats: int = 0,
    timing: dict[str, Any] | None = None,
    compiled: bool = False,
) -> dict[str, Any]:
    """Build, convert and compare; the numbers of the module docstring (the timings into `timing` when
    `repeats`)."""
    timing = {} if timing is None else timing
    torch.manual_seed(0)
    reference = build_reference(reference_dir, num_classes, scan_backend).eval()
    with torch.no_grad():  # random BatchNorm statistics, so that eval mode exercises them
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                cast(torch.Tensor, module.running_mean).uniform_(-0.5, 0.5)
                cast(torch.Tensor, module.running_var).uniform_(0.5, 2.0)
    state = reference.state_dict()
    config, classes, bands = reference_config(state)
    model = create_model("cmt_unet_base", classes, bands, scan_backend=scan_backend, backbone=config.backbone)
    model.load_state_dict(convert_reference_state_dict(state, model), strict=True)
    model.eval()
    x = torch.randn(batch, bands, size, size)
    with torch.inference_mode():
        expected = reference(x)
        actual = model(x)
    difference = (actual - expected).abs().max().item()
    if repeats:
        fast = create_model("cmt_unet_base", classes, bands, backbone=config.backbone)
        fast.load_state_dict(model.state_dict(), strict=True)
        models = [reference, optimize_for_inference(fast, inplace=True)]
        if compiled:
            models.append(compile_for_inference(models[1]))
            with torch.inference_mode():
                compiled_difference = (models[2](x[:1]) - expected[:1]).abs().max() / expected[:1].abs().max()
            timing["compiled_relative_diff"] = compiled_difference.item()
        medians = _median_ms(models, x[:1], repeats)
        timing["reference_ms"], timing["ours_ms"] = medians[:2]
        timing["speedup"] = round(timing["reference_ms"] / timing["ours_ms"], 2)
        if compiled:
            timing["ours_compiled_ms"] = medians[2]
            timing["speedup_compiled"] = round(timing["reference_ms"] / medians[2], 2)
    return {
        "reference_trainable_params": sum(p.numel() for p in reference.parameters() if p.requires_grad),
        "reference_all_params": sum(p.numel() for p in reference.parameters()),
        "ours_params": sum(p.numel() for p in model.parameters()),
        "max_abs_diff": difference,
        "relative_diff": difference / expected.abs().max().item(),
        "argmax_agreement": (actual.argmax(1) == expected.argmax(1)).double().mean().item(),
        "size": size,
        "batch": batch,
        "scan_backend": scan_backend,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", type=Path, required=True, help="checkout of XUE-YYC/CMT-UNet")
    parser.add_argument("--size", type=int, default=256, help="input side in pixels (a multiple of 32)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--num-classes", type=int, default=6)
    parser.add_argument("--scan-backend", default="auto", help="selective-scan backend of both models")
    parser.add_argument("--time", type=int, default=0, metavar="N", help="also time one image forward, median of N")
    parser.add_argument("--compile", action="store_true", help="with --time, also time ours compiled")
    args = parser.parse_args()
    timing: dict[str, Any] = {}
    parity = compare(
        args.reference_dir,
        args.size,
        args.batch,
        args.num_classes,
        args.scan_backend,
        repeats=args.time,
        timing=timing,
        compiled=args.compile,
    )
    print(json.dumps(parity))
    if timing:
        target = {"threads": torch.get_num_threads(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
        print(json.dumps({**target, **timing}))


if __name__ == "__main__":
    main()

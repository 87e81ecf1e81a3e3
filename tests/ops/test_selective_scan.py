"""Every scan backend against `selective_scan_ref`: outputs, gradients, dtypes, stability, dispatch.

Errors are measured as max|x - x_ref| / max|x_ref| per tensor, against the reference computed in fp64 on the same
inputs, so that each number is the backend's own error.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from cmt_geo.errors import BackendUnavailableError, ConfigError
from cmt_geo.ops import _scan_cpu, _scan_torch, available_backends, selective_scan, selective_scan_ref
from cmt_geo.ops.selective_scan import BACKEND_ENV_VAR, resolve_backend

CPU_BACKENDS = [name for name in available_backends("cpu") if name != "ref"]
ARG_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
# Half-precision tolerances: a few units of the format's rounding (fp16 eps 9.8e-4, bf16 eps 7.8e-3) on outputs,
# more on gradients, which pass through more half-precision roundings of inputs and outputs.
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.float16: (3e-3, 1e-2), torch.bfloat16: (2.5e-2, 6e-2)}


def make_inputs(
    batch: int,
    channels: int,
    length: int,
    d_state: int = 16,
    groups: int | None = 2,
    with_D: bool = True,
    with_z: bool = True,
    with_bias: bool = True,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    seed: int = 0,
    softplus: bool = True,
) -> dict[str, Tensor | None]:
    """Random scan inputs like SS2D's: groups=None gives (B, N, L) B and C shared by all channels.

    delta is drawn in [-1.5, 1] for use through softplus, or in [0, 1.5] when it is the step size itself.
    """
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen)

    state_shape = (batch, d_state, length) if groups is None else (batch, groups, d_state, length)
    inputs: dict[str, Tensor | None] = {
        "u": rand(batch, channels, length),
        "delta": (torch.rand(batch, channels, length, generator=gen) * 2.5 - 1.5).abs_()
        if not softplus
        else torch.rand(batch, channels, length, generator=gen) * 2.5 - 1.5,
        "A": -torch.exp(rand(channels, d_state) * 0.5),
        "B": rand(*state_shape),
        "C": rand(*state_shape),
        "D": rand(channels) if with_D else None,
        "z": rand(batch, channels, length) if with_z else None,
        "delta_bias": torch.rand(channels, generator=gen) * 0.5 if with_bias else None,
    }
    weights = {"A", "D", "delta_bias"}  # kept in fp32 like model parameters
    return {
        k: None if v is None else v.to(device=device, dtype=torch.float32 if k in weights else dtype)
        for k, v in inputs.items()
    }


def rel_error(x: Tensor, ref: Tensor) -> float:
    return ((x.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()


def run_with_grads(
    scan_inputs: dict[str, Tensor | None], seed: int = 1, **kwargs: object
) -> tuple[Tensor, dict[str, Tensor]]:
    """Output and the gradients of <out, random cotangent> for every given input."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in scan_inputs.items() if v is not None}
    backend = kwargs.pop("backend", None)
    args = {**scan_inputs, **leaves}
    out = (
        selective_scan(**args, **kwargs, backend=backend)  # type: ignore[arg-type]
        if backend is not None
        else selective_scan_ref(**args, **kwargs)  # type: ignore[arg-type]
    )
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out)
    grads = torch.autograd.grad(out, list(leaves.values()), cotangent)
    return out.detach(), dict(zip(leaves, grads, strict=True))


def in_fp64(scan_inputs: dict[str, Tensor | None]) -> dict[str, Tensor | None]:
    return {k: None if v is None else v.double() for k, v in scan_inputs.items()}


def assert_matches_reference(
    backend: str, scan_inputs: dict[str, Tensor | None], out_tol: float, grad_tol: float, **kwargs: object
) -> None:
    out, grads = run_with_grads(scan_inputs, backend=backend, **kwargs)
    ref_out, ref_grads = run_with_grads(in_fp64(scan_inputs), **kwargs)
    assert out.dtype == scan_inputs["u"].dtype  # type: ignore[union-attr]
    assert torch.isfinite(out).all()
    assert rel_error(out, ref_out) <= out_tol, f"out: {rel_error(out, ref_out):.2e}"
    for name, grad in grads.items():
        assert grad.shape == scan_inputs[name].shape  # type: ignore[union-attr]
        error = rel_error(grad, ref_grads[name])
        assert error <= grad_tol, f"d{name}: {error:.2e}"


SHAPES = [  # (batch, channels, length, d_state, groups)
    (1, 4, 1, 16, 1),
    (2, 8, 37, 16, 4),
    (1, 6, 64, 8, None),
    (2, 12, 130, 4, 3),
    (1, 16, 300, 16, 16),
]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, (x if x is not None else 0 for x in s))))
@pytest.mark.parametrize(
    ("with_D", "with_z", "with_bias", "softplus"), list(itertools.product([False, True], repeat=4))
)
def test_fp32_matches_reference(
    backend: str, shape: tuple[int, ...], with_D: bool, with_z: bool, with_bias: bool, softplus: bool
) -> None:
    batch, channels, length, d_state, groups = shape
    scan_inputs = make_inputs(batch, channels, length, d_state, groups, with_D, with_z, with_bias, softplus=softplus)
    assert_matches_reference(backend, scan_inputs, *TOLERANCE[torch.float32], delta_softplus=softplus)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("groups", [4, None])
def test_half_precision_matches_reference(backend: str, dtype: torch.dtype, groups: int | None) -> None:
    scan_inputs = make_inputs(2, 8, 96, groups=groups, dtype=dtype)
    assert_matches_reference(backend, scan_inputs, *TOLERANCE[dtype], delta_softplus=True)


@pytest.mark.parametrize("backend", [*CPU_BACKENDS, "ref"])
def test_last_state_matches_reference(backend: str) -> None:
    scan_inputs = make_inputs(2, 8, 50, groups=4)
    out, state = selective_scan(**scan_inputs, delta_softplus=True, return_last_state=True, backend=backend)  # type: ignore[arg-type]
    ref_out, ref_state = selective_scan_ref(**in_fp64(scan_inputs), delta_softplus=True, return_last_state=True)  # type: ignore[arg-type]
    assert state.shape == (2, 8, 16)
    assert rel_error(out, ref_out) <= 1e-5
    assert rel_error(state, ref_state) <= 1e-5


def scan_by_loops(
    u: np.ndarray,
    delta: np.ndarray,
    A: np.ndarray,
    B: np.ndarray,
    C: np.ndarray,
    D: np.ndarray,
    z: np.ndarray,
    delta_bias: np.ndarray,
    delta_softplus: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The scan written out one scalar at a time, straight from the recurrence and sharing nothing with cmt_geo.

    B and C are (batch, groups, d_state, length), or (batch, d_state, length) for one group; channel c reads group
    c // (channels / groups), as in mamba-ssm. Returns out (batch, channels, length) and the last state.
    """
    batch, channels, length = u.shape
    d_state = A.shape[1]
    grouped = B.ndim == 4
    per_group = channels // (B.shape[1] if grouped else 1)
    out = np.zeros((batch, channels, length))
    last = np.zeros((batch, channels, d_state))
    for b in range(batch):
        for c in range(channels):
            g = c // per_group
            h = [0.0] * d_state
            for t in range(length):
                step = delta[b, c, t] + delta_bias[c]
                if delta_softplus:
                    step = math.log1p(math.exp(step))
                y = 0.0
                for n in range(d_state):
                    B_t = B[b, g, n, t] if grouped else B[b, n, t]
                    C_t = C[b, g, n, t] if grouped else C[b, n, t]
                    h[n] = math.exp(step * A[c, n]) * h[n] + step * B_t * u[b, c, t]
                    y += C_t * h[n]
                y += D[c] * u[b, c, t]
                gate = z[b, c, t]
                out[b, c, t] = y * gate / (1.0 + math.exp(-gate))
            last[b, c] = h
    return out, last


@pytest.mark.parametrize("groups", [None, 1, 2, 6], ids=lambda g: f"groups={g}")
@pytest.mark.parametrize("softplus", [True, False], ids=["softplus", "raw-delta"])
def test_reference_matches_the_recurrence_written_out(groups: int | None, softplus: bool) -> None:
    """`selective_scan_ref` against plain loops: the torch backends share its helpers, so this is what checks them."""
    scan_inputs = in_fp64(make_inputs(2, 6, 9, d_state=3, groups=groups, softplus=softplus, seed=5))
    arrays = {k: v.numpy() for k, v in scan_inputs.items() if v is not None}
    out, last = selective_scan_ref(**scan_inputs, delta_softplus=softplus, return_last_state=True)  # type: ignore[arg-type]
    expected_out, expected_last = scan_by_loops(**arrays, delta_softplus=softplus)
    np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(last.numpy(), expected_last, rtol=1e-12, atol=1e-12)


def test_reference_keeps_fp64_state() -> None:
    scan_inputs = in_fp64(make_inputs(1, 4, 20))
    assert selective_scan_ref(**scan_inputs).dtype == torch.float64  # type: ignore[arg-type]


@pytest.mark.skipif("cpu" not in CPU_BACKENDS, reason="needs numba")
@pytest.mark.parametrize(
    ("batch", "length", "channels", "d_state"), [(1, 1, 16, 16), (2, 130, 40, 4), (1, 300, 33, 16), (2, 65, 7, 8)]
)
def test_both_ways_scan_is_a_forward_scan_plus_a_backward_one(
    batch: int, length: int, channels: int, d_state: int
) -> None:
    """The channels-last kernel SS2D's inference uses: direction 0 scans the steps in order, direction 1 in reverse,
    each with its own Δ, B, C, A, D and bias; their outputs add up at each step."""
    gen = torch.Generator().manual_seed(4)
    rank = 3
    u = torch.randn(batch, length, channels, generator=gen)
    delta = torch.randn(2, batch, length, channels, generator=gen)
    x_dbl = torch.randn(batch, length, 2, rank + 2 * d_state, generator=gen)
    A = -torch.exp(torch.randn(2 * channels, d_state, generator=gen) * 0.5)
    D, bias = torch.randn(2 * channels, generator=gen), torch.randn(2 * channels, generator=gen)
    out = _scan_cpu.selective_scan_both_ways_cpu(u, delta, x_dbl, A, D, bias)
    expected = torch.zeros(batch, channels, length, dtype=torch.float64)
    for k in range(2):
        in_order = (lambda t: t) if k == 0 else (lambda t: t.flip(-1))  # the step order, its own inverse
        own = slice(k * channels, (k + 1) * channels)
        B, C = x_dbl[:, :, k, rank:].double().transpose(1, 2).split(d_state, dim=1)
        y = selective_scan_ref(
            in_order(u.double().transpose(1, 2)),
            in_order(delta[k].double().transpose(1, 2)),
            A[own].double(),
            in_order(B),
            in_order(C),
            D[own].double(),
            delta_bias=bias[own].double(),
            delta_softplus=True,
        )
        expected += in_order(y)
    assert out.dtype == torch.float32
    assert rel_error(out, expected.transpose(1, 2)) <= 1e-5


BOTH_WAYS_SHAPES = {"u": (1, 10, 16), "delta": (2, 1, 10, 16), "x_dbl": (1, 10, 2, 11), "A": (32, 4), "D": (32,)}


@pytest.mark.parametrize(
    ("name", "shape"),
    [("delta", (1, 10, 16)), ("x_dbl", (1, 10, 1, 11)), ("x_dbl", (1, 10, 2, 7)), ("A", (16, 4)), ("D", (16,))],
)
def test_both_ways_scan_names_a_mismatched_shape(name: str, shape: tuple[int, ...]) -> None:
    tensors = {key: torch.randn(size) for key, size in BOTH_WAYS_SHAPES.items()}
    tensors[name] = torch.randn(shape)
    with pytest.raises(ConfigError, match=f"^{name} must"):
        _scan_cpu.selective_scan_both_ways_cpu(*tensors.values(), torch.zeros(32))


@pytest.mark.parametrize(
    ("threads", "batch", "channels", "per_item"), [(2, 1, 96, 16), (16, 1, 96, 2), (2, 4, 768, 384)]
)
def test_both_ways_items_are_whole_cache_lines_unless_too_few(
    threads: int, batch: int, channels: int, per_item: int
) -> None:
    """Items of 16-channel multiples (no cache line written by two threads) while they leave two items per thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert _scan_cpu._channels_per_item(batch, channels) == per_item
    finally:
        torch.set_num_threads(before)


def test_fast_exp2_is_within_2_to_the_minus_22_and_saturates() -> None:
    """The scan's decays: 2**x in fp32 within 2**-22 relative error over [-125, 127] (also without FMA); beyond, the
    nearest end (no inf or NaN)."""
    import numba

    from cmt_geo.ops._scan_cpu_kernels import fast_exp2

    @numba.njit(fastmath=True)
    def powers(xs: np.ndarray, out: np.ndarray) -> None:
        for i in range(xs.shape[0]):
            out[i] = fast_exp2(xs[i])

    xs = np.concatenate([np.linspace(-125, 127, 1_000_001), np.linspace(-1, 1, 100_001)]).astype(np.float32)
    out = np.empty_like(xs)
    powers(xs, out)
    exact = np.exp2(xs.astype(np.float64))
    assert np.abs(out / exact - 1).max() <= 2.0**-22
    ends = np.array([-1e4, -126.5, 127.5, 1e4], dtype=np.float32)
    saturated = np.empty_like(ends)
    powers(ends, saturated)
    np.testing.assert_allclose(saturated, np.exp2([-125.0, -125.0, 127.0, 127.0]), rtol=2.0**-22)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(("length", "with_grads"), [(1024, True), (16384, False)])
def test_stable_for_large_steps_and_long_sequences(backend: str, length: int, with_grads: bool) -> None:
    """Δ up to 10 and A down to -16 (Δ·A = -160, where a chunked exp-of-cumsum scan overflows to NaN)."""
    gen = torch.Generator().manual_seed(3)
    channels, d_state = 4, 16
    scan_inputs = make_inputs(1, channels, length, d_state, groups=1, with_z=False)
    scan_inputs["delta"] = torch.rand(1, channels, length, generator=gen) * 10.0  # Δ ∈ [0, 10], used as is
    scan_inputs["A"] = -torch.linspace(1, 16, d_state).repeat(channels, 1)
    scan_inputs["delta_bias"] = None
    if with_grads:
        assert_matches_reference(backend, scan_inputs, 1e-5, 1e-5)
        return
    out = selective_scan(**scan_inputs, backend=backend)  # type: ignore[arg-type]
    ref = selective_scan_ref(**in_fp64(scan_inputs))  # type: ignore[arg-type]
    assert torch.isfinite(out).all()
    assert rel_error(out, ref) <= 1e-5


def test_auto_picks_the_compiled_cpu_scan_and_torch_for_fp64() -> None:
    assert resolve_backend("auto", torch.device("cpu")) == "cpu"
    assert resolve_backend("auto", torch.device("cpu"), torch.float64) == "torch"


def test_environment_variable_overrides_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV_VAR, "ref")
    assert resolve_backend("auto", torch.device("cpu")) == "ref"
    assert resolve_backend("torch", torch.device("cpu")) == "torch"  # an explicit choice wins
    monkeypatch.setenv(BACKEND_ENV_VAR, "fastest")
    with pytest.raises(ConfigError, match="unknown scan backend 'fastest'"):
        resolve_backend("auto", torch.device("cpu"))


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="use one of auto, mamba, cpu, torch, ref"):
        selective_scan(**make_inputs(1, 4, 8), backend="triton")  # type: ignore[arg-type]


def test_forcing_mamba_without_cuda_kernel_says_what_to_install() -> None:
    with pytest.raises(BackendUnavailableError, match=r"cmt-geo\[cuda\]"):
        selective_scan(**make_inputs(1, 4, 8), backend="mamba")  # type: ignore[arg-type]


def test_cpu_backend_without_numba_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scan_cpu, "numba_available", lambda: False)
    assert "cpu" not in available_backends("cpu")
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    with pytest.raises(BackendUnavailableError, match="pip install numba"):
        resolve_backend("cpu", torch.device("cpu"))


@pytest.mark.parametrize(
    ("name", "bad", "message"),
    [
        ("delta", torch.zeros(1, 4, 7), "delta must have shape"),
        ("A", torch.zeros(3, 16), "A must have shape"),
        ("B", torch.zeros(1, 3, 16, 8), "B must be"),
        ("C", torch.zeros(1, 16, 9), "C must be"),
        ("C", torch.zeros(1, 4, 16, 8), "B and C must have the same shape"),
        ("D", torch.zeros(5), "D must have shape"),
        ("u", torch.zeros(4, 8), "u must be"),
        ("A", torch.zeros(4), r"A \(channels, d_state\)"),
    ],
)
def test_mismatched_shapes_are_named(name: str, bad: Tensor, message: str) -> None:
    scan_inputs = make_inputs(1, 4, 8)
    scan_inputs[name] = bad
    with pytest.raises(ConfigError, match=message):
        selective_scan(**scan_inputs)  # type: ignore[arg-type]


def test_backends_do_not_import_the_dispatcher_that_imports_them() -> None:
    """The backends take their shared helpers from `_scan_common`, so there is no import cycle to trip over."""
    backend_files = sorted(Path(_scan_torch.__file__).parent.glob("_scan_*.py"))
    assert len(backend_files) >= 4
    for path in backend_files:
        imported = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert "cmt_geo.ops.selective_scan" not in imported, path.name


@pytest.mark.parametrize("budget", _scan_torch.CHUNK_ELEMENTS.values())
def test_torch_chunks_stay_within_the_element_budget(budget: int) -> None:
    for batch, channels, length in [(1, 768, 4096), (8, 768, 4096), (1, 3, 5), (64, 6144, 64)]:
        chunk = _scan_torch.chunk_length(batch, channels, 16, length, budget)
        assert 1 <= chunk <= max(1, 1 << (length - 1).bit_length())
        assert chunk == 1 or batch * channels * 16 * chunk <= budget


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["mamba", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("groups", [4, None])
def test_cuda_backends_match_reference(backend: str, dtype: torch.dtype, groups: int | None) -> None:
    if backend not in available_backends("cuda"):
        pytest.skip(f"{backend} is not available on this CUDA machine")
    scan_inputs = make_inputs(2, 64, 1000, groups=groups, dtype=dtype, device="cuda")
    assert_matches_reference(backend, scan_inputs, *TOLERANCE[dtype], delta_softplus=True)


@pytest.mark.gpu
def test_cuda_auto_prefers_the_mamba_kernel() -> None:
    expected = "mamba" if "mamba" in available_backends("cuda") else "torch"
    assert resolve_backend("auto", torch.device("cuda")) == expected


def test_cpu_scan_is_a_well_formed_torch_operator() -> None:
    scan_inputs = make_inputs(1, 8, 20, groups=4)
    args = tuple(v.requires_grad_(True) if v is not None else None for v in scan_inputs.values())
    torch.library.opcheck(torch.ops.cmt_geo.selective_scan_cpu.default, (*args, True))


def test_compiles_into_one_graph_with_gradients() -> None:
    """The CPU scan is a registered operator, so torch.compile keeps the caller whole (fullgraph fails on breaks)."""
    scan_inputs = make_inputs(2, 8, 33, groups=4)

    def scan(**kwargs: Tensor | None) -> Tensor:
        return selective_scan(**kwargs, delta_softplus=True, backend="cpu") * 2  # type: ignore[arg-type]

    compiled = torch.compile(scan, fullgraph=True, backend="aot_eager")
    leaves = {k: v.clone().requires_grad_(True) for k, v in scan_inputs.items() if v is not None}
    out = compiled(**leaves)
    expected = scan(**scan_inputs)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert all(leaf.grad is not None and torch.isfinite(leaf.grad).all() for leaf in leaves.values())


def test_cpu_scan_uses_as_many_threads_as_torch() -> None:
    import numba

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        selective_scan(**make_inputs(1, 8, 16), backend="cpu")  # type: ignore[arg-type]
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    selective_scan(**make_inputs(1, 8, 16), backend="cpu")  # type: ignore[arg-type]
    assert numba.get_num_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)


CONCURRENT_SCANS = """
import threading, torch
from cmt_geo.ops import selective_scan
torch.manual_seed(0)
inputs = [torch.randn(1, 16, 300), torch.randn(1, 16, 300), -torch.rand(16, 16), torch.randn(1, 4, 16, 300),
          torch.randn(1, 4, 16, 300)]
expected = selective_scan(*inputs, backend="cpu")
failures = []
def work():
    for _ in range(10):
        leaves = [x.clone().requires_grad_(True) for x in inputs]
        out = selective_scan(*leaves, backend="cpu")
        out.sum().backward()
        if not torch.equal(out, expected):
            failures.append("different result")
threads = [threading.Thread(target=work) for _ in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
print("failures", len(failures))
"""


def test_cpu_scan_from_several_threads_with_numbas_workqueue_layer() -> None:
    """numba's workqueue layer (where OpenMP and TBB are missing) aborts on concurrent parallel kernels."""
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    result = subprocess.run([sys.executable, "-c", CONCURRENT_SCANS], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["failures", "0"]


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 targets")
@pytest.mark.parametrize(("cpu", "lanes"), [("haswell", 8), ("generic", 4)])
def test_cpu_scan_state_loops_vectorize_without_avx512(cpu: str, lanes: int) -> None:
    """AVX2 (haswell) and baseline x86-64 (generic, SSE2) get fp32 vectors in every state loop, in fp32 only."""
    code = "import json; from cmt_geo.ops._scan_cpu_kernels import compile_target; print(json.dumps(compile_target()))"
    env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": ""}
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    target = json.loads(child.stdout)
    assert target["numba_cpu"] == cpu
    assert target["scan_fp32_lanes"] == lanes
    assert not target["scan_wide_math"]
    assert target["numba_isa"] == ("avx" if cpu == "haswell" else "sse")


CACHED_SCAN = """
import json, torch
import cmt_geo.ops._scan_cpu as scan
u, delta = torch.randn(1, 8, 70, requires_grad=True), torch.rand(1, 8, 70)
B, C = torch.randn(1, 2, 3, 70), torch.randn(1, 2, 3, 70)
out, _ = scan.selective_scan_cpu(u, delta, -torch.rand(8, 3), B, C, None, None, None, True)
out.sum().backward()
x_dbl = torch.randn(1, 70, 2, 7)
scan.selective_scan_both_ways_cpu(torch.randn(1, 70, 8), torch.randn(2, 1, 70, 8), x_dbl, -torch.rand(16, 3),
                                  torch.ones(16), torch.zeros(16))
print(json.dumps({name: [sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values())]
                  for name, f in scan._compiled_kernels(3)._asdict().items()}))
"""


@pytest.mark.slow
def test_cpu_scan_kernels_load_from_numbas_disk_cache_in_a_new_process() -> None:
    """The second process loads the compiled kernels instead of compiling them again (seconds for every command)."""
    runs = [subprocess.run([sys.executable, "-c", CACHED_SCAN], capture_output=True, text=True) for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr[-2000:]
    assert json.loads(runs[1].stdout) == {"forward": [1, 0], "backward": [1, 0], "both_ways_forward": [1, 0]}


KEPT_THREADS = """
import torch
torch.set_num_threads(1)
import numba
import cmt_geo.ops._scan_cpu as scan
u, delta = torch.randn(1, 8, 70, requires_grad=True), torch.rand(1, 8, 70)
out, _ = scan.selective_scan_cpu(u, delta, -torch.rand(8, 3), torch.randn(1, 2, 3, 70), torch.randn(1, 2, 3, 70),
                                 None, None, None, True)
out.sum().backward()
print(torch.get_num_threads(), numba.get_num_threads())
"""


def test_cpu_scan_keeps_torchs_thread_count_when_numbas_pool_starts() -> None:
    """numba's OpenMP layer resets the OpenMP thread count when it starts; torch's must stay what the user set."""
    child = subprocess.run([sys.executable, "-c", KEPT_THREADS], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["1", "1"]

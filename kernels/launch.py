"""What every Triton impl checks: whether Triton can run here, whether a timing would mean anything, and what a
kernel wrapper checks before a launch; and how a kernel impl is built from the reference modules."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kanbench.impl import Impl
from kanbench.kernels.interpreter_rounding import round_bf16_to_nearest

FLOAT_INPUTS = (torch.float32, torch.bfloat16, torch.float16)


def interpreted() -> bool:
    """Whether Triton kernels run in the CPU emulator (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def interpreter_incompatibility(triton_version: str, numpy_version: str) -> str | None:
    """Why Triton's interpreter cannot run under these versions, or None. Up to triton 3.6 the interpreter turns
    a scalar argument or ``tl.num_programs`` (a one-element array) into a Python int with ``int(array)``, which
    numpy 2.4 refuses ("only 0-dimensional arrays can be converted to Python scalars"): every kernel with a loop
    bounded by an argument fails. A CUDA build of torch 2.11 pins triton 3.6, so a CPU machine with that wheel
    and a current numpy meets it."""

    def major_minor(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", version)[:2])

    if major_minor(triton_version) >= (3, 7) or major_minor(numpy_version) < (2, 4):
        return None
    return (f"triton {triton_version}'s interpreter (TRITON_INTERPRET=1) cannot run under numpy {numpy_version} "
            "(it converts one-element arrays to Python ints, which numpy 2.4 refuses): "
            "pip install 'triton>=3.7' or 'numpy<2.4'")


@functools.cache
def installed_interpreter_incompatibility() -> str | None:
    """:func:`interpreter_incompatibility` of the installed triton and numpy (None without triton)."""
    try:
        import numpy
        import triton
    except ImportError:
        return None
    return interpreter_incompatibility(triton.__version__, numpy.__version__)


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA ``device`` (launch grids are sized per SM)."""
    return _sm_count(device.index if device.index is not None else torch.cuda.current_device())


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


# Triton lowers tl.dot to tensor-core MMA from compute capability 8.0 (Ampere) on; below it (Turing: T4, RTX 20;
# Volta) it multiplies on the CUDA cores, as FMAs, in every dtype (since triton 3.3, triton-lang/triton#5066; Triton
# lists 8.0 as its oldest supported NVIDIA GPU). A tile sized for tensor cores then spills (python -m
# kanbench.kernels.aot sm_75 shows it), so the kernels take their CUDA-core tiles there.
TENSOR_CORE_DOTS_FROM = 80


def tensor_core_dots(arch: str) -> bool:
    """Whether Triton's tl.dot uses tensor cores on the NVIDIA architecture ``arch``, named as in ``sm_90``."""
    return int(arch.removeprefix("sm_")) >= TENSOR_CORE_DOTS_FROM


def dots_on_tensor_cores(device: torch.device) -> bool:
    """Whether Triton's tl.dot runs on tensor cores on ``device`` (a CUDA GPU of compute capability 8.0 or
    newer); False on the CPU (the interpreter)."""
    if device.type != "cuda":
        return False
    return tensor_core_dots(_architecture(device.index if device.index is not None else torch.cuda.current_device()))


@functools.cache
def _architecture(index: int) -> str:
    """A CUDA device's compute capability named as in ``sm_90`` (asked once per device: a launch checks it)."""
    major, minor = torch.cuda.get_device_capability(index)
    return f"sm_{major}{minor}"


def cuda_core_dots_note(arch: str | None) -> str | None:
    """What a run on a GPU of architecture ``arch`` ("sm_75") must say of its Triton rows where Triton's tl.dot
    has no tensor cores there; None elsewhere (and for a run that did not record its GPU's architecture)."""
    if not arch or not arch.startswith("sm_") or tensor_core_dots(arch):
        return None  # an AMD GPU's target (gfx942) has matrix cores Triton uses
    return (f"{arch}: Triton's tl.dot has no tensor cores on this GPU (it uses them from sm_80), so the Triton "
            "impls' matmuls run on the CUDA cores, at their CUDA-core tiles, while cuBLAS, behind the references' "
            "matmuls, may use its fp16 tensor cores.")


def needs_ieee_dot(dtype: torch.dtype) -> bool:
    """Whether a kernel's tl.dot should take fp32 operands at full precision: fp32 inputs (Triton's default for them
    is TF32, torch's is not), and every input under the interpreter, whose 16-bit tl.dot returns garbage (triton
    3.9: errors of 1e10 on a 16×16 bf16 product), so that the interpreter checks the kernels with exact products."""
    return dtype == torch.float32 or interpreted()


def check_launchable(x: torch.Tensor, who: str) -> None:
    """A ValueError, before any launch, for tensors a Triton kernel cannot take: not on a CUDA device (a launch with
    meta or host pointers would corrupt the CUDA context instead of failing; the CPU is fine under
    TRITON_INTERPRET=1), or not a float dtype the kernels compute in fp32; and a RuntimeError on the CPU where the
    interpreter cannot run with the installed numpy (:func:`interpreter_incompatibility`)."""
    if x.device.type != "cuda" and not (interpreted() and x.device.type == "cpu"):
        raise ValueError(f"{who}: tensors must be on a CUDA device (or on the CPU under TRITON_INTERPRET=1), "
                         f"got {x.device.type}.")
    if x.device.type == "cpu" and (reason := installed_interpreter_incompatibility()):
        raise RuntimeError(f"{who}: {reason}.")
    if x.device.type == "cpu":
        round_bf16_to_nearest()  # the interpreter's bf16 conversions as the GPU's (interpreter_rounding.py)
    if x.dtype not in FLOAT_INPUTS:
        raise ValueError(f"{who}: inputs must be float32, bfloat16 or float16, got {x.dtype}.")


def triton_unavailable(device: str) -> str | None:
    """Why Triton kernels cannot run on ``device`` here, or None."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return ("triton is not installed: pip install 'kanbench[triton]' (a CUDA build of torch brings it; "
                "Linux only)")
    if device == "cpu" and not interpreted():
        return ("Triton kernels need a CUDA GPU; on a CPU they run only under TRITON_INTERPRET=1 (slow, for "
                "correctness, not timing)")
    if device == "cpu" and (reason := installed_interpreter_incompatibility()):
        return reason
    if device == "cpu":
        round_bf16_to_nearest()  # before any kernel, a peer package's included, runs in the interpreter
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    return None


def triton_emulated(device: str) -> str | None:
    """Why a timing of a Triton kernel on ``device`` means nothing here (the interpreter on a CPU), or None."""
    if device == "cpu" and interpreted():
        return ("not timed: on a CPU the Triton kernels run in the TRITON_INTERPRET=1 emulator (checked for "
                "correctness; its time measures numpy, not the kernel)")
    return None


def swapped(build: Callable[..., nn.Module], reference: type[nn.Module],
            replacement: type[nn.Module]) -> Callable[..., nn.Module]:
    """A constructor: ``build(...)``, then every submodule of exactly class ``reference`` given class
    ``replacement`` (a subclass computing the same function with kernels): the parameters, buffers and their names
    stay the reference's, so the gate loads one state dict into both. A module with no ``reference`` in it is an
    error: it would be the reference itself, passing the gate against itself and timed as the kernel."""

    def make(*args: Any, **hparams: Any) -> nn.Module:
        module = build(*args, **hparams)
        found = [m for m in module.modules() if type(m) is reference]
        if not found:
            raise TypeError(f"{replacement.__name__}: {getattr(build, '__name__', build)} built no "
                            f"{reference.__name__} to replace; name the class the module is built from")
        for m in found:
            m.__class__ = replacement
        return module

    return make


def triton_runs() -> dict[str, Any]:
    """Where a Triton impl runs: CUDA (and the CPU interpreter for tests), fp32/bf16/fp16 inputs."""
    return {"devices": ("cpu", "cuda"), "dtypes": FLOAT_INPUTS, "unavailable": triton_unavailable,
            "emulated": triton_emulated}


def triton_layer_impl(name: str, block: Callable[..., nn.Module], layer: type[nn.Module],
                      replacement: type[nn.Module], description: str) -> Impl:
    """A Triton impl that computes every ``layer`` module, in the variant's block and alone, by ``replacement``
    (:func:`swapped`: the reference's parameters and names), running where Triton does (:func:`triton_runs`)."""
    return Impl(name, block=swapped(block, layer, replacement), layer=swapped(layer, layer, replacement),
                **triton_runs(), description=description)


def unfused_kan_impl(block: Callable[..., nn.Module], layer: type[nn.Module], unfused: type[nn.Module],
                     features: str) -> Impl:
    """The ``triton_unfused`` impl of a KAN variant (kernels/kan_linear_unfused.py), built like its ``triton``
    impl: ``unfused`` is that impl's layer class with ``FUSED = False``; ``features`` names what its feature pass
    writes."""
    return triton_layer_impl("triton_unfused", block, layer, unfused,
                             f"`triton`'s layer with its matmuls unfused: {features} written as a feature tensor by "
                             "a Triton kernel, the matmuls torch's (cuBLAS), the input gradient's feature sum a "
                             "Triton kernel")

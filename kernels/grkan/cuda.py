"""The ``cuda`` impl of ``grkan``: the group-rational op as CUDA C++ kernels (rational_cuda.cu, bound to
torch by rational_cuda.cpp), compiled on first use with ``torch.utils.cpp_extension`` and cached by torch
(``TORCH_EXTENSIONS_DIR``, default ~/.cache/torch_extensions): the first call on a machine builds it (tens of
seconds, most of it compiling the binding against torch's headers), later ones load the built module.

Where it cannot be built, :func:`cuda_unavailable` says why (no GPU, a torch without CUDA, no toolkit), the runner
records that as the row's status, and :func:`load_extension` raises the same message instead of a compiler trace.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from types import ModuleType

import torch

from kanbench.kernels.grkan import with_rational
from kanbench.registry import Impl, register_impl
from kanbench.variants.grkan import GroupRational

SOURCES = [Path(__file__).with_name("rational_cuda.cpp"), Path(__file__).with_name("rational_cuda.cu")]
EXTENSION_NAME = "kanbench_grkan_rational_cuda"


def cuda_toolkit() -> str | None:
    """The CUDA toolkit root for torch's extension builder (CUDA_HOME, CUDA_PATH, nvcc on PATH, /usr/local/cuda):
    the first holding both bin/nvcc and include/cuda_runtime.h, or None."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    candidates.append("/usr/local/cuda")
    for root in candidates:
        if root and (Path(root) / "bin" / "nvcc").exists() and (Path(root) / "include" / "cuda_runtime.h").exists():
            return root
    return None


def cuda_unavailable(device: str) -> str | None:
    """Why the CUDA kernels cannot be built and run on ``device`` here, or None."""
    if device != "cuda":
        return "the CUDA kernels run on a CUDA device only"
    if torch.version.cuda is None:
        return (f"this torch ({torch.__version__}) is built without CUDA; the cuda impl compiles its kernels against "
                f"a CUDA build of torch")
    if not torch.cuda.is_available():
        return "no CUDA device"
    if cuda_toolkit() is None:
        return (f"no CUDA toolkit: the cuda impl compiles kernels/grkan/rational_cuda.cu on first use and needs nvcc "
                f"(install the CUDA {torch.version.cuda} toolkit, or set CUDA_HOME to it)")
    return None


@functools.cache
def load_extension() -> ModuleType:
    """The compiled extension (built once per machine and torch version, then loaded from torch's cache)."""
    why = cuda_unavailable("cuda")
    if why:
        raise RuntimeError(f"grkan cuda: {why}.")
    root = cuda_toolkit()
    os.environ.setdefault("CUDA_HOME", root)
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None or not (Path(cpp_extension.CUDA_HOME) / "include" / "cuda_runtime.h").exists():
        cpp_extension.CUDA_HOME = root  # imported before CUDA_HOME was set, or found a bare nvcc wrapper's folder
    try:
        return cpp_extension.load(name=EXTENSION_NAME, sources=[str(s) for s in SOURCES],
                                  extra_cflags=["-O3"], extra_cuda_cflags=["-O3"], verbose=False)
    except Exception as err:  # the compiler's log is long; keep its end, which names the failing line
        log = str(err).strip().splitlines()
        raise RuntimeError("grkan cuda: building the CUDA extension failed:\n" + "\n".join(log[-25:])) from err


class _CudaRational(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,  # type: ignore[override]
                sign_at_zero: int) -> torch.Tensor:
        ctx.save_for_backward(x, numerator, denominator)
        ctx.sign_at_zero = sign_at_zero
        return load_extension().rational_forward(x, numerator, denominator)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # type: ignore[override]
        x, numerator, denominator = ctx.saved_tensors
        dx, da, db = load_extension().rational_backward(dy.contiguous(), x, numerator, denominator,
                                                        float(ctx.sign_at_zero))
        return dx.reshape(x.shape), da, db, None


def rational_cuda(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
                  sign_at_zero: int = 1) -> torch.Tensor:
    """F(x) per channel group with the CUDA kernels, differentiable in x and both coefficient sets (sign(0) =
    ``sign_at_zero`` in the gradients of |x| and |b|)."""
    return _CudaRational.apply(x, numerator, denominator, sign_at_zero)


class CudaGroupRational(GroupRational):
    """:class:`GroupRational` computed by the CUDA kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rational_cuda(x, self.numerator, self.denominator, self.sign_at_zero)


register_impl("grkan", Impl(
    "cuda", **with_rational(CudaGroupRational), devices=("cuda",),
    dtypes=(torch.float32, torch.bfloat16, torch.float16), unavailable=cuda_unavailable,
    description="CUDA C++ rational, forward and backward (deterministic two-stage coefficient sums), compiled on "
                "first use with torch.utils.cpp_extension",
))

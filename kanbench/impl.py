"""One implementation of a variant (``reference``, ``compiled``, a fused kernel, a peer package's layer): its
constructors per form, and the devices, dtypes and installed packages it needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

ALL_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class Impl:
    """One implementation of a variant: its constructors and where it can run."""

    name: str
    block: Callable[..., nn.Module] | None
    layer: Callable[..., nn.Module] | None = None
    op: Callable[..., nn.Module] | None = None
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[torch.dtype, ...] = ALL_DTYPES
    # Returns why the impl cannot run on this machine (missing package, no GPU), or None when it can.
    unavailable: Callable[[str], str | None] = lambda device: None
    description: str = ""
    # The installed package this impl measures (an adapter in kanbench/peers/, its distribution's name as pip
    # knows it); None for kanbench's own impls.
    package: str | None = None
    # Returns why a timing on this device would not measure the impl (a kernel emulated by the Triton interpreter on
    # a CPU), or None. Such configurations are checked for correctness but not timed.
    emulated: Callable[[str], str | None] = lambda device: None

    def has_form(self, form: str) -> bool:
        """Whether this impl builds ``form`` (block, layer or op): a fused layer kernel has no op form, say."""
        return getattr(self, form, None) is not None

    def why_not(self, device: str, dtype: torch.dtype | None = None) -> str | None:
        """Why this impl cannot run on ``device`` in ``dtype``; None when it can."""
        device_type = torch.device(device).type
        if device_type not in self.devices:
            return f"impl '{self.name}' runs on {', '.join(self.devices)}, not {device_type}"
        if dtype is not None and dtype not in self.dtypes:
            names = ", ".join(str(d).removeprefix("torch.") for d in self.dtypes)
            return f"impl '{self.name}' supports dtypes {names}, not {str(dtype).removeprefix('torch.')}"
        return self.unavailable(device_type)

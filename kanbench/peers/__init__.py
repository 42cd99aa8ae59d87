"""The packages people already install, measured beside kanbench's own impls: one adapter module per package
(``kanbench[peers]`` installs them from the package index; nothing of theirs is copied here).

An adapter registers its impl whether or not its package is installed; without it the impl is unavailable with
the install command as the reason, so ``kanbench list`` names the package and a run records a ``skipped`` row, and
importing kanbench never fails on a missing peer. Where a peer computes a kanbench variant's function exactly, the
adapter keeps the reference's parameters and names (the gate loads one state dict into both and compares every
gradient by name) and calls the peer through ``torch.func.functional_call`` with the weights mapped onto its
parametrization.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

INSTALL = "pip install 'kanbench[peers]'   (or pip install -e '.[peers]')"


def missing(package: str, module: str) -> Callable[[str], str | None]:
    """An impl's ``unavailable(device)``: the install command while ``module`` cannot be imported."""

    def why_not(device: str) -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"needs the '{package}' package, not installed: {INSTALL}"
        return None

    return why_not


from kanbench.peers import flashkan, ikan, inkan, liger_kernel, pykan  # noqa: E402, F401 - each registers its impls

"""The error every name lookup raises (variants, impls, harnesses, presets, tasks, dtypes): the known names and
the nearest one, so that a typo is answered with what to type instead of a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnknownNameError(ValueError):
    """An unknown name (variant, impl, harness, preset, task, dtype); the message lists the known names and the
    nearest match."""


def unknown_name_message(kind: str, name: str, known: Iterable[str], plural: str | None = None) -> str:
    """``unknown KIND 'NAME'. Did you mean 'NEAREST'? Known KINDs: ...`` (the known names in the order given)."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind} '{name}'.{hint} Known {plural or kind + 's'}: {', '.join(known)}."

"""Offline datasets and tasks: everything is bundled with a package or generated; nothing downloads, ever."""

from kanbench.data.splits import Split

__all__ = ["Split"]

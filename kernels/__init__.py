"""Fused kernels for kanbench's variants, installed as ``kanbench.kernels`` (never as a top-level ``kernels``).

Importing this package registers every kernel impl with the registry; each impl reports why it cannot run on a
machine (no GPU, no Triton) instead of failing at import, so the package imports everywhere.
"""

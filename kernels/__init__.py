"""Fused kernels for kanbench's variants, installed as ``kanbench.kernels`` (never as a top-level ``kernels``).

Importing this package registers every kernel impl with the registry. Triton itself is imported only when a kernel
runs, and each impl says why it cannot run on a machine (no GPU, no Triton), so the package imports everywhere.
"""

from kanbench.kernels import grkan, grkan_cuda, spark, spark_sparse_cpu  # noqa: F401

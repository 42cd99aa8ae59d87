"""kanbench: benchmarks of KAN layers and sparse FFNs as drop-in transformer FFNs."""

from kanbench.registry import (
    create_block,
    create_layer,
    create_op,
    get_variant,
    list_variants,
    register,
    register_impl,
)

__all__ = ["create_block", "create_layer", "create_op", "get_variant", "list_variants", "register", "register_impl"]
__version__ = "0.1.0"

"""One module per variant: the readable PyTorch reference and its registry entry.

Importing this package registers all of them; to add a variant, write one module here (or anywhere in your own
code) that decorates its block with :func:`kanbench.registry.register`.
"""

from kanbench.variants import af_kan, bspline_kan, glu, grkan, mlp, relu_kan, spark_ffn

__all__ = ["af_kan", "bspline_kan", "glu", "grkan", "mlp", "relu_kan", "spark_ffn"]

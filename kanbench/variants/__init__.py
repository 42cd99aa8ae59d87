"""One module per variant: the readable PyTorch reference and its registry entry.

Importing this package imports every module in it, which registers every variant: to add one, write one module
here (or anywhere in your own code) that registers it with :func:`kanbench.registry.register` (or, for a layer
variant, :func:`kanbench.variants.two_layer.register_layer_variant`); nothing else needs an edit.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

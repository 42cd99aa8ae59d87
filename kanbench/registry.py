"""The variant registry, timm-style: ``register`` a variant once, then ``create_block`` / ``create_layer`` /
``list_variants`` by name or glob pattern.

A variant is a transformer-FFN replacement with a **block** form ``(..., d_model) -> (..., d_model)`` and, for the
KAN family and the MLPs, a **layer** form ``(..., d_in) -> (..., d_out)`` for stacking into small networks. Its
implementations (``impl``) are the readable ``reference``, its ``compiled`` form (every variant gets one) and the
fused kernels registered by ``kanbench.kernels``.
Asking for an impl that cannot run here is an error, never a silent fallback to another impl.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kanbench.costs import Cost
from kanbench.impl import Impl
from kanbench.names import UnknownNameError, unknown_name_message
from kanbench.preparation import DEFAULT_PREPARATIONS, Preparation

REFERENCE = "reference"  # every variant's readable PyTorch impl: the truth every other impl is checked against


@dataclass
class VariantSpec:
    """Everything kanbench knows about one variant."""

    name: str
    description: str
    paper: str
    block: Callable[..., nn.Module]
    block_cost: Callable[..., Cost]
    defaults: dict[str, Any]
    validate: Callable[..., None]
    layer: Callable[..., nn.Module] | None = None
    layer_cost: Callable[..., Cost] | None = None
    # The variant's characteristic elementwise op alone, ``(width, **hparams)``: GR-KAN's rational, the MLP's GELU.
    op: Callable[..., nn.Module] | None = None
    op_cost: Callable[..., Cost] | None = None
    # Hyperparameters that make a layer the last one of a network (e.g. no activation after the MLP's last Linear).
    last_layer_hparams: dict[str, Any] = field(default_factory=dict)
    impls: dict[str, Impl] = field(default_factory=dict)
    # Where inputs live: "normal" (N(0, 1), a transformer's normalised activations) or "unit" (U[0, 1], for
    # ReLU-KAN whose bumps cover about [0, 1]). Tests and harnesses draw their random inputs from it.
    input_kind: str = "normal"
    # ``edge_inputs(**hparams) -> values``: where the variant's function changes piece (grid knots, interval ends,
    # the rational's sign at 0). The correctness gate puts inputs exactly there, beside and outside the range.
    edge_inputs: Callable[..., list[float]] | None = None
    # ``extra_flop_metrics(form, module, x, backward) -> [(metric, value, unit, message)]``: what the FLOP harness
    # adds for this variant, measured on the impl's own module and a held-out input (Spark's active fractions and
    # effective FLOPs).
    extra_flop_metrics: Callable[..., list[tuple[str, float, str, str]]] | None = None
    # The variant every speed-up is measured against (``mlp``): report tables read it here, never by name.
    baseline: bool = False
    # How the accuracy harness may prepare this variant's inputs (kanbench.data.prepare), the authors' own first;
    # the tuned protocol searches them all on validation, the uniform one gives every variant the first default.
    preparations: tuple[Preparation, ...] = DEFAULT_PREPARATIONS
    # ``token_state(d_in, d_out, **hparams) -> numbers``: what one layer of the reference keeps per token for its
    # backward, declared by a layer variant whose tokens are independent (no batch statistic) and whose state grows
    # with d_in·d_out (Wav-KAN's (tokens, d_out, d_in) wavelet tensors). The gate then builds its truth over chunks
    # of tokens that fit a fixed memory budget (kanbench/harness/correctness.py), so an impl that needs no such
    # state is checked at the shapes where the reference alone would run out of memory.
    token_state: Callable[..., int] | None = None
    # ``gate_upstream(truth_module, x, upstream) -> upstream``: the upstream gradient the correctness gate checks
    # gradients with, given its random one and the float64 reference (AF-KAN's removes what rounding decides).
    gate_upstream: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    @property
    def forms(self) -> tuple[str, ...]:
        return ("block",) + (("layer",) if self.layer is not None else ()) + (("op",) if self.op is not None else ())

    def hparams(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """The defaults updated with ``overrides``; an unknown hyperparameter is an error naming the known ones."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(f"{self.name}: unknown hyperparameter(s) {', '.join(unknown)}; known: {known}.")
        return {**self.defaults, **overrides}

    def validate_block(self, d_model: int, d_hidden: int, hparams: dict[str, Any]) -> None:
        """A block of a layer variant is two layers, d_model → d_hidden → d_model: check both."""
        self.validate(d_model, d_hidden, **hparams)
        if self.layer is not None:
            self.validate(d_hidden, d_model, **hparams)

    def impl(self, name: str) -> Impl:
        _load_kernels()
        if name not in self.impls:
            raise UnknownNameError(unknown_name_message("impl", name, sorted(self.impls),
                                                        plural=f"impls of '{self.name}'"))
        return self.impls[name]

    def impl_names(self) -> list[str]:
        """Every registered impl of this variant, kernels included."""
        _load_kernels()
        return list(self.impls)

    def usable_impls(self, device: str = "cpu") -> list[str]:
        _load_kernels()
        return [name for name, impl in self.impls.items() if impl.why_not(device) is None]


_REGISTRY: dict[str, VariantSpec] = {}


def register(
    name: str,
    *,
    description: str,
    paper: str,
    block_cost: Callable[..., Cost],
    defaults: dict[str, Any],
    validate: Callable[..., None],
    layer: Callable[..., nn.Module] | None = None,
    layer_cost: Callable[..., Cost] | None = None,
    last_layer_hparams: dict[str, Any] | None = None,
    op: Callable[..., nn.Module] | None = None,
    op_cost: Callable[..., Cost] | None = None,
    input_kind: str = "normal",
    edge_inputs: Callable[..., list[float]] | None = None,
    extra_flop_metrics: Callable[..., list[tuple[str, float, str, str]]] | None = None,
    baseline: bool = False,
    preparations: tuple[Preparation, ...] = DEFAULT_PREPARATIONS,
    token_state: Callable[..., int] | None = None,
    gate_upstream: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: register the decorated block constructor as variant ``name`` with a ``reference`` impl
    and a ``compiled`` one (``torch.compile`` of the reference, :mod:`kanbench.compiled`).

    ``validate(d_in, d_out, **hparams)`` raises ValueError naming the violated constraint (for a variant with a
    layer form it checks one layer, and a block is checked as its two layers); ``block_cost(d_model,
    d_hidden, **hparams)`` and ``layer_cost(d_in, d_out, **hparams)`` give the analytic :class:`Cost`;
    ``edge_inputs(**hparams)`` lists the input values where the function changes piece (see :class:`VariantSpec`).
    """

    def decorator(block: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"variant '{name}' is already registered")
        spec = VariantSpec(
            name=name, description=description, paper=paper, block=block, block_cost=block_cost,
            defaults=dict(defaults), validate=validate, layer=layer, layer_cost=layer_cost,
            last_layer_hparams=dict(last_layer_hparams or {}), op=op, op_cost=op_cost,
            input_kind=input_kind, edge_inputs=edge_inputs, extra_flop_metrics=extra_flop_metrics,
            baseline=baseline, preparations=tuple(preparations), token_state=token_state,
            gate_upstream=gate_upstream,
        )
        spec.impls[REFERENCE] = Impl(REFERENCE, block=block, layer=layer, op=op, description="plain PyTorch")
        from kanbench.compiled import COMPILED, compiled_impl  # every variant, any added later too

        spec.impls[COMPILED] = compiled_impl(block, layer, op)
        _REGISTRY[name] = spec
        return block

    return decorator


def register_impl(variant: str, impl: Impl) -> None:
    """Add a non-reference implementation (fused kernels) to a registered variant."""
    spec = _REGISTRY[variant]
    if impl.name in spec.impls:
        raise ValueError(f"impl '{impl.name}' of '{variant}' is already registered")
    spec.impls[impl.name] = impl


def unregister_impl(variant: str, impl: str) -> None:
    """Remove a non-reference impl (used by tests that register throw-away impls)."""
    if impl != REFERENCE:
        _REGISTRY[variant].impls.pop(impl, None)


def unregister(name: str) -> None:
    """Remove a variant (used by tests that register throw-away variants)."""
    _REGISTRY.pop(name, None)


_loaded = {"variants": False, "kernels": False}


def _load_variants() -> None:
    if not _loaded["variants"]:
        _loaded["variants"] = True
        importlib.import_module("kanbench.variants")


def _load_kernels() -> None:
    _load_variants()
    if not _loaded["kernels"]:
        _loaded["kernels"] = True
        importlib.import_module("kanbench.kernels")
        importlib.import_module("kanbench.peers")  # the packages people install, as impls (kanbench[peers])


def get_variant(name: str) -> VariantSpec:
    """The spec of ``name``; an unknown name lists the known ones and the nearest match."""
    _load_variants()
    if name not in _REGISTRY:
        raise UnknownNameError(unknown_name_message("variant", name, sorted(_REGISTRY)))
    return _REGISTRY[name]


def list_variants(pattern: str | Iterable[str] = "*") -> list[str]:
    """Registered variant names matching a glob pattern (or any of several), sorted."""
    _load_variants()
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted(n for n in _REGISTRY if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def check_dims(name: str, **dims: int) -> None:
    """Each dimension a positive integer, else a ValueError naming it."""
    for key, value in dims.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: {key} must be a positive integer, got {value!r}.")


def create_block(name: str, d_model: int, d_hidden: int, impl: str = "reference", **hparams: Any) -> nn.Module:
    """Build variant ``name``'s FFN block ``(..., d_model) -> (..., d_model)`` with hidden width ``d_hidden``."""
    spec = get_variant(name)
    check_dims(name, d_model=d_model, d_hidden=d_hidden)
    hp = spec.hparams(hparams)
    spec.validate_block(d_model, d_hidden, hp)
    chosen = spec.impl(impl)
    if chosen.block is None:
        raise ValueError(f"impl '{impl}' of '{name}' has no block form")
    return chosen.block(d_model, d_hidden, **hp)


def create_layer(name: str, d_in: int, d_out: int, impl: str = "reference", **hparams: Any) -> nn.Module:
    """Build variant ``name``'s layer ``(..., d_in) -> (..., d_out)`` for stacking into small networks."""
    spec = get_variant(name)
    if spec.layer is None:
        raise ValueError(f"variant '{name}' has only a block form; use create_block (layer forms: "
                         f"{', '.join(n for n in list_variants() if get_variant(n).layer is not None)}).")
    check_dims(name, d_in=d_in, d_out=d_out)
    hp = spec.hparams(hparams)
    spec.validate(d_in, d_out, **hp)
    chosen = spec.impl(impl)
    if chosen.layer is None:
        raise ValueError(f"impl '{impl}' of '{name}' has no layer form")
    return chosen.layer(d_in, d_out, **hp)


def block_cost(name: str, d_model: int, d_hidden: int, **hparams: Any) -> Cost:
    """Analytic parameters and per-token FLOPs of the block (see :mod:`kanbench.costs`)."""
    spec = get_variant(name)
    hp = spec.hparams(hparams)
    spec.validate_block(d_model, d_hidden, hp)
    return spec.block_cost(d_model, d_hidden, **hp)


def layer_cost(name: str, d_in: int, d_out: int, **hparams: Any) -> Cost:
    """Analytic parameters and per-token FLOPs of the layer form."""
    spec = get_variant(name)
    if spec.layer_cost is None:
        raise ValueError(f"variant '{name}' has no layer form")
    hp = spec.hparams(hparams)
    spec.validate(d_in, d_out, **hp)
    return spec.layer_cost(d_in, d_out, **hp)


def create_op(name: str, width: int, impl: str = "reference", **hparams: Any) -> nn.Module:
    """Build variant ``name``'s characteristic elementwise op over ``(..., width)`` (e.g. GR-KAN's rational)."""
    spec = get_variant(name)
    if spec.op is None:
        with_op = ", ".join(n for n in list_variants() if get_variant(n).op is not None)
        raise ValueError(f"variant '{name}' has no op form (variants with one: {with_op}).")
    check_dims(name, width=width)
    hp = spec.hparams(hparams)
    spec.validate(width, width, **hp)
    chosen = spec.impl(impl)
    if chosen.op is None:
        raise ValueError(f"impl '{impl}' of '{name}' has no op form")
    return chosen.op(width, **hp)


def op_cost(name: str, width: int, **hparams: Any) -> Cost:
    """Analytic parameters and per-token FLOPs of the op form."""
    spec = get_variant(name)
    if spec.op_cost is None:
        raise ValueError(f"variant '{name}' has no op form")
    hp = spec.hparams(hparams)
    spec.validate(width, width, **hp)
    return spec.op_cost(width, **hp)


def create(form: str, name: str, d_in: int, d_out: int, impl: str = "reference", **hparams: Any) -> nn.Module:
    """Build any form: ``block`` (d_in = d_model, d_out = d_hidden), ``layer`` (d_in → d_out) or ``op`` (d_in)."""
    if form == "block":
        return create_block(name, d_in, d_out, impl, **hparams)
    if form == "layer":
        return create_layer(name, d_in, d_out, impl, **hparams)
    if form == "op":
        return create_op(name, d_in, impl, **hparams)
    raise ValueError(f"unknown form '{form}'; forms: block, layer, op.")


def cost(form: str, name: str, d_in: int, d_out: int, **hparams: Any) -> Cost:
    """Analytic cost of any form (arguments as in :func:`create`)."""
    if form == "block":
        return block_cost(name, d_in, d_out, **hparams)
    if form == "layer":
        return layer_cost(name, d_in, d_out, **hparams)
    if form == "op":
        return op_cost(name, d_in, **hparams)
    raise ValueError(f"unknown form '{form}'; forms: block, layer, op.")


def baseline_variant() -> str:
    """The variant registered with ``baseline=True`` (speed-ups are measured against it)."""
    _load_variants()
    marked = [name for name, spec in _REGISTRY.items() if spec.baseline]
    if len(marked) != 1:
        raise ValueError(f"exactly one variant must be registered with baseline=True, found {marked or 'none'}")
    return marked[0]


def make_input(name: str, *shape: int, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               generator: torch.Generator | None = None) -> torch.Tensor:
    """A random input for variant ``name`` (never zeros: they hide unwritten outputs and wrong indexing)."""
    kind = get_variant(name).input_kind
    draw = torch.rand if kind == "unit" else torch.randn
    return draw(*shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)

"""What one ``kanbench run`` measures: the configurations (variant × impl × dtype × shape × seed) with the modes
each is measured in, and the accuracy training runs, planned from a preset and the command line's overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from kanbench import registry
from kanbench.harness import accuracy
from kanbench.harness.base import measurement_names
from kanbench.harness.presets import GRADIENT_MODES, Preset
from kanbench.harness.results import Config


@dataclass
class Plan:
    """What one run measures: configurations with the modes each is measured in."""

    preset: Preset
    items: list[tuple[Config, tuple[str, ...]]]
    harnesses: tuple[str, ...]
    threads: int
    samples: int
    min_run_time: float
    cuda_graph: bool = False
    # accuracy: (configuration, task) per variant × task × seed; the configuration's d_hidden is the matched width
    accuracy_items: list[tuple[Config, str]] = field(default_factory=list)
    accuracy_quick: bool = True
    protocol: str = "tuned"  # kanbench.harness.tuning: tuned | uniform
    match: str = "params"
    match_gaps: dict[tuple[str, str], float] = field(default_factory=dict)

    @cached_property
    def _with_gradients(self) -> dict[tuple, bool]:
        needs: dict[tuple, bool] = {}
        for config, modes in self.items:
            key = config.key("", "")
            needs[key] = needs.get(key, False) or any(m in GRADIENT_MODES for m in modes)
        return needs

    def times_backward(self, config: Config) -> bool:
        """Whether this run measures ``config`` in a mode with gradients (a configuration it does not plan counts as
        one: the gate then checks everything)."""
        return self._with_gradients.get(config.key("", ""), True)


def make_plan(preset: Preset, variants: list[str], impls: list[str] | None, device: str, dtypes: list[str],
              tokens: list[int] | None, d_models: list[int] | None, d_hidden: int | None, harnesses: list[str],
              seeds: int = 1, threads: int = 1, cuda_graph: bool = False, tasks: list[str] | None = None,
              match: str = "params", accuracy_seeds: int = 3, decode_tokens: list[int] | None = None,
              protocol: str = "tuned") -> Plan:
    items: list[tuple[Config, tuple[str, ...]]] = []
    modes_main = tuple(m for m in preset.modes if m != "decode")
    token_sets: list[tuple[list[int], tuple[str, ...]]] = []
    main_tokens = tokens if tokens is not None else list(preset.tokens)
    measuring = any(h in harnesses for h in measurement_names())
    if main_tokens and modes_main and measuring:
        token_sets.append((main_tokens, modes_main))
    decode = decode_tokens if decode_tokens is not None else list(preset.decode_tokens)
    if "decode" in preset.modes and decode and measuring:
        token_sets.append((decode, ("decode",)))
    for variant in variants:
        spec = registry.get_variant(variant)
        if preset.form not in spec.forms:
            continue
        # impls that build the preset's form (triton_fused is a layer kernel: no op form, so not in kat-b)
        variant_impls = [i for i in (impls if impls is not None else spec.impl_names())
                         if i in spec.impl_names() and spec.impl(i).has_form(preset.form)]
        for impl in variant_impls:
            for dtype in dtypes:
                for d_model in d_models or list(preset.d_model):
                    hidden = d_hidden if d_hidden is not None else preset.hidden(variant, d_model)
                    hparams = dict(preset.hparams_by_variant.get(variant, {}))
                    for token_list, modes in token_sets:
                        for n in token_list:
                            for seed in range(seeds):
                                config = Config(variant, impl, preset.form, device, dtype, n, d_model,
                                                hidden if preset.form != "op" else d_model, hparams, seed)
                                items.append((config, modes))
    plan = Plan(preset, items, tuple(harnesses), threads, preset.cuda_samples, preset.cpu_min_run_time, cuda_graph,
                accuracy_quick=preset.accuracy_quick, protocol=protocol, match=match)
    if "accuracy" in harnesses:
        for task_name in tasks if tasks is not None else list(preset.accuracy_tasks):
            task = accuracy.get_task(task_name)
            for variant in variants:
                if task.form == "anchor" and not registry.get_variant(variant).baseline:
                    continue  # a check of the harness: once, beside the baseline
                hidden, gap = (task.reference_hidden, 0.0) if accuracy.supports(task, variant) else \
                    accuracy.match_hidden(task, variant, match)
                plan.match_gaps[(variant, task_name)] = gap
                for seed in range(accuracy_seeds):
                    config = Config(variant, "reference", task.form, device, "fp32", task.batch, task.d_model, hidden,
                                    dict(task.hparams_by_variant.get(variant, {})), seed)
                    plan.accuracy_items.append((config, task_name))
    return plan

"""Named sweeps for ``kanbench run --preset NAME``.

A preset fixes the form (block or op), the shapes, dtypes and modes; the command line may override the variants,
tokens, widths, dtypes and harnesses. ``default`` is CPU-sized: every harness for all variants takes a few
minutes on a 2-core machine, torch.compile's cold cache included.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from kanbench.names import UnknownNameError, unknown_name_message

MODES = ("fwd_no_grad", "fwd_bwd", "decode")
GRADIENT_MODES = ("fwd_bwd",)  # the modes that run a backward (the others time forwards under no_grad)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    form: str = "block"  # block | op
    variants: tuple[str, ...] = ("*",)
    tokens: tuple[int, ...] = (256,)
    decode_tokens: tuple[int, ...] = ()  # token counts for the decode mode (few tokens, weights rotated)
    d_model: tuple[int, ...] = (128,)
    d_hidden: int | None = None  # None: 4·d_model
    hidden_by_variant: dict[str, int] = field(default_factory=dict)
    hparams_by_variant: dict[str, dict[str, Any]] = field(default_factory=dict)
    dtypes: tuple[str, ...] = ("fp32",)
    modes: tuple[str, ...] = ("fwd_no_grad", "fwd_bwd")
    # "all" (every registered harness), "measurements" (every harness that measures configurations: all but
    # accuracy among kanbench's own; the GPU presets time, count and measure only) or the names
    harnesses: str | tuple[str, ...] = "all"
    cpu_min_run_time: float = 0.2  # seconds per CPU latency measurement (torch.utils.benchmark)
    cuda_samples: int = 100
    # decode: rotate over at least this many weight copies, more until together they exceed twice the last-level
    # cache (workload.decode_copies), so that a call never finds its weights cached by the previous one
    weight_copies: int = 2
    accuracy_tasks: tuple[str, ...] = ("digits", "kan-fit:exp_sin_sq")
    accuracy_quick: bool = True  # the tasks' short budgets (a smoke pass), or their full ones
    # fields that replace these on a CUDA device: one preset sized for both machines (peers: a CPU size there, the
    # ffn-768 sizes on a GPU)
    on_cuda: dict[str, Any] = field(default_factory=dict)

    def for_device(self, device: str) -> Preset:
        """This preset as it runs on ``device``."""
        return replace(self, **self.on_cuda) if self.on_cuda and torch.device(device).type == "cuda" else self

    def harness_names(self) -> tuple[str, ...]:
        from kanbench.harness.base import harness_names, measurement_names  # the registry loads the harnesses

        if self.harnesses == "all":
            return harness_names(on_request=False)
        if self.harnesses == "measurements":
            return measurement_names(on_request=False)
        return tuple(self.harnesses)

    def hidden(self, variant: str, d_model: int) -> int:
        if variant in self.hidden_by_variant:
            return self.hidden_by_variant[variant]
        return self.d_hidden if self.d_hidden is not None else 4 * d_model


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "default",
            "CPU-sized pass of every variant and harness: 128 → 512 → 128, 256 tokens (+ decode at 1 token), fp32; "
            "accuracy on digits and kan-fit:exp_sin_sq with short budgets",
            tokens=(256,),
            decode_tokens=(1,),
            d_model=(128,),
            modes=("fwd_no_grad", "fwd_bwd", "decode"),
            cpu_min_run_time=0.1,
        ),
        Preset(
            "accuracy-full",
            "every accuracy task with its full training budget, parameter-matched widths, learning rate and input "
            "preparation searched per variant on validation (tuned protocol), 3 seeds, and the mnist1d-reference "
            "check",
            harnesses=("accuracy",),
            accuracy_tasks=("mnist1d-reference", "digits", "mnist1d", "kan-fit:exp_sin_sq", "kan-fit:product",
                            "kan-fit:exp_sin_4d", "kan-fit:norm_3d", "vit-digits", "char-lm"),
            accuracy_quick=False,
        ),
        Preset(
            "ffn-768",
            "the ViT-B/GPT-2 FFN 768 → 3072 → 768 at 512..16384 tokens, fp32 and bf16",
            tokens=(512, 2048, 8192, 16384),
            d_model=(768,),
            dtypes=("fp32", "bf16"),
            harnesses="measurements",
        ),
        Preset(
            "peers",
            "kanbench's impls beside the packages people install (kanbench[peers]: pykan, ikan, FlashKAN, INKAN, "
            "Liger-Kernel), every variant and every impl usable here, gated then timed, counted and measured: "
            "128 → 512 → 128 at 256 tokens, fp32, on a CPU; the ffn-768 sizes (768 → 3072 → 768, 512..16384 "
            "tokens, fp32 and bf16) on a GPU",
            tokens=(256,),
            d_model=(128,),
            harnesses="measurements",
            on_cuda={"tokens": (512, 2048, 8192, 16384), "d_model": (768,), "dtypes": ("fp32", "bf16")},
        ),
        Preset(
            "kat-b",
            "the activation alone (GR-KAN's rational vs the MLP's GELU) on KAT-B's (64, 197, 768) and "
            "(64, 197, 3072), fp32 and bf16",
            form="op",
            variants=("grkan", "mlp"),
            tokens=(64 * 197,),
            d_model=(768, 3072),
            dtypes=("fp32", "bf16"),
            harnesses="measurements",
        ),
        Preset(
            "spark-topk",
            "Spark's statistical top-k alone (the training path's non-matmul op) on 1024 and 4096 rows of 13824 "
            "predictor scores (Gemma-2-2B's d_ff), fp32 and bf16, beside the MLP's GELU on the same tensor",
            form="op",
            variants=("spark_ffn", "mlp"),
            tokens=(1024, 4096),
            d_model=(13824,),
            dtypes=("fp32", "bf16"),
            harnesses="measurements",
        ),
        Preset(
            "decode-gemma2b",
            "Gemma-2-2B-sized FFN decode, bf16, batch 1..64: Spark (d_ff 13824, k 8 %, r 1024) vs the dense gated "
            "FFN (9216, same parameters) and the dense ungated one (13824)",
            variants=("spark_ffn", "glu", "mlp"),
            tokens=(),
            decode_tokens=(1, 2, 4, 8, 16, 32, 64),
            d_model=(2304,),
            hidden_by_variant={"spark_ffn": 13824, "glu": 9216, "mlp": 13824},
            hparams_by_variant={"spark_ffn": {"r": 1024}, "glu": {"activation": "gelu"}},
            dtypes=("bf16",),
            modes=("decode",),
            harnesses="measurements",
        ),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError(unknown_name_message("preset", name, PRESETS))
    return PRESETS[name]

"""Physical floors beside every latency: the fewest bytes a call must move over the measured copy bandwidth, and
its analytic FLOPs over the measured matmul rate. ``over_floor`` is the median over the larger floor.

The dense bandwidth floor reads the input and every weight once and writes the output (forward+backward also reads
the upstream gradient and writes the input and weight gradients). A module that needs fewer bytes in inference
declares ``inference_weight_bytes(x) -> (bytes, union_fraction)`` (Spark's sparse decode: the predictor plus the
active neurons' rows only); in the no-grad modes its ``floor_bandwidth_active`` row is reported beside the dense
one and is the bandwidth floor that ``over_floor`` uses, so a sparse path cannot "beat" its floor.
"""

from __future__ import annotations

import torch

from kanbench.harness.results import Config


def floor_values(config: Config, mode: str, params: int, ceilings: dict[str, float], module: torch.nn.Module,
                 x: torch.Tensor) -> list[tuple[str, float, str, str]]:
    """(metric, value, unit, message) rows: floor_bandwidth, floor_bandwidth_active (where declared),
    floor_compute and over_floor is added by :func:`over_floor` once the median is known."""
    size = x.element_size()
    width_out = config.d_hidden if config.form == "layer" else config.d_model
    x_bytes, y_bytes, p_bytes = x.numel() * size, config.tokens * width_out * size, params * size
    n_bytes = x_bytes + y_bytes + p_bytes  # read x and the weights, write y
    if mode == "fwd_bwd":
        n_bytes += 2 * x_bytes + y_bytes + 2 * p_bytes  # read x and dy, write dx; read W, write dW
    cost = config.cost()
    n_flops = config.tokens * (cost.fwd_bwd_flops if mode == "fwd_bwd" else cost.fwd_flops)
    rows = []
    bandwidth = ceilings.get("copy_bandwidth_Bps")
    if bandwidth:
        rows.append(("floor_bandwidth", 1e3 * n_bytes / bandwidth, "ms", f"{n_bytes} B at the measured copy "
                                                                         "bandwidth"))
        needed = getattr(module, "inference_weight_bytes", None)
        if needed is not None and mode != "fwd_bwd":
            weight_bytes, union = needed(x)
            active = x_bytes + y_bytes + weight_bytes
            rows.append(("floor_bandwidth_active", 1e3 * active / bandwidth, "ms",
                         f"{active} B: input, output, the predictor and the rows of the {union:.1%} of neurons "
                         "active in some row"))
    rate = ceilings.get(f"matmul_{config.dtype}_flops_per_s")
    if rate:
        rows.append(("floor_compute", 1e3 * n_flops / rate, "ms",
                     f"{n_flops} analytic FLOP at the measured {config.dtype} matmul rate"))
    return rows


def over_floor(floors: list[tuple[str, float, str, str]], median_ms: float) -> tuple[str, float, str, str] | None:
    """median / the larger floor, the active bandwidth floor standing in for the dense one where present."""
    values = {metric: value for metric, value, _, _ in floors}
    if "floor_bandwidth_active" in values:
        values.pop("floor_bandwidth")
    if not values:
        return None
    used = max(values, key=values.get)
    return ("over_floor", median_ms / values[used], "ratio", f"median / {used}")


def floor_rows(config: Config, mode: str, params: int, ceilings: dict[str, float], module: torch.nn.Module,
               x: torch.Tensor, median_ms: float) -> list[tuple[str, float, str, str]]:
    floors = floor_values(config, mode, params, ceilings, module, x)
    ratio = over_floor(floors, median_ms)
    return floors + ([ratio] if ratio else [])

"""The report's "accuracy protocol" section: how each number in the accuracy table was obtained — the protocol,
the search space and every candidate's validation score, the chosen setting per variant and task, the budget, the
share of seeds that converged, and the spread over seeds."""

from __future__ import annotations

import json

import pandas as pd

from kanbench.harness.tuning import LEARNING_RATES, SEARCH_PREFIX, TRAINING_KEYS, candidate_keys, hparams_key

TEXT = ("Protocol `{protocol}`. Under `tuned`, every variant gets the same search on seed 0: learning rate in "
        "{lrs} × its declared input preparations (two each, the authors' own first; none on the transformer "
        "tasks, which embed their inputs), chosen on validation only; then every seed trains with the choice and "
        "only then is test scored. `uniform` is one shared recipe (the task's learning rate, standardized "
        "inputs). *converged*: share of seeds whose best validation step came before the last step (a run still "
        "improving at its last step was stopped by the budget, not by convergence). *search (val)*: each "
        "candidate's validation score, in candidate order.")


def _setting(hparams: str) -> str:
    hp = json.loads(hparams)
    extra = {k: v for k, v in hp.items() if k not in TRAINING_KEYS and k != "groups"}
    text = f"lr {hp['lr']:g}" if "lr" in hp else "the task's shared lr"  # runs before the protocols recorded none
    text += f", {hp['prep']}" if "prep" in hp else ""
    return text + "".join(f", {k} {tuple(v) if isinstance(v, list) else v}" for k, v in extra.items())


def protocol_text(env: dict) -> str:
    return TEXT.format(protocol=env.get("accuracy_protocol", "uniform"),
                       lrs="{" + ", ".join(f"{lr:g}" for lr in LEARNING_RATES) + "}")


def _in_candidate_order(search: pd.DataFrame, task: str, variant: str) -> pd.DataFrame:
    """The search rows in the search's candidate order (a multi-core run records them as they finish); rows that
    match no candidate of today's search (older protocols) keep their order, after the others."""
    from kanbench.harness.accuracy import get_task

    try:
        order = {key: i for i, key in enumerate(candidate_keys(get_task(task), variant))}
    except (KeyError, ValueError):  # a task or variant this kanbench no longer knows
        return search
    rank = [order.get(hparams_key(json.loads(h)), len(order)) for h in search.hparams]
    return search.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank")


def protocol_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, variant) with final runs: chosen setting, budget, convergence, spread, search scores."""
    acc = df[(df.harness == "accuracy") & (df.status != "skipped")]
    finals = acc[acc.metric.str.startswith("test_") & (acc.stat == "value")
                 & ~acc["mode"].str.startswith(SEARCH_PREFIX)]
    rows = []
    for (task, variant), group in finals.groupby(["mode", "variant"], sort=False):
        runs = acc[(acc["mode"] == task) & (acc.variant == variant)]
        search = _in_candidate_order(acc[(acc["mode"] == SEARCH_PREFIX + task) & (acc.variant == variant)
                                         & acc.metric.str.startswith("best_val_") & (acc.metric != "best_val_step")],
                                     task, variant)
        std = runs[(runs.metric == group.metric.iloc[0]) & (runs.stat == "std")]
        converged = runs[(runs.metric == "converged") & (runs.stat == "mean")]
        steps = group.message.str.extract(r"(\d+) steps", expand=False).iloc[0]
        scores = [f"{float(v):.4g}" if s == "ok" else s for v, s in zip(search.value, search.status, strict=True)]
        rows.append({"task": task, "variant": variant, "chosen": _setting(group.hparams.iloc[0]),
                     "steps": steps if isinstance(steps, str) else "—",
                     "converged": converged.message.iloc[0].split(" in ")[-1] if len(converged) else "—",
                     "std over seeds": f"{float(std.value.iloc[0]):.3g}" if len(std) else "—",
                     "search (val)": " / ".join(scores) if scores else "—"})
    return pd.DataFrame(rows)


def converged_share(df: pd.DataFrame) -> tuple[int, int] | None:
    """(seeds whose best validation step came before the last, seeds) over every final run of the table."""
    rows = df[(df.harness == "accuracy") & (df.metric == "converged") & (df.stat == "mean")]
    if rows.empty:
        return None
    counts = rows.message.str.extract(r"in (\d+) of (\d+) seeds").astype(int)
    return int(counts[0].sum()), int(counts[1].sum())

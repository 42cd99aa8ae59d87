"""Training one accuracy run: load the task's data (offline) prepared as the run's setting says, train with AdamW
and cosine decay for a fixed number of steps, keep the checkpoint with the best validation score (never test), and
report its test score (a search run never scores test at all)."""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from kanbench.data.digits import digits
from kanbench.data.kan_fit import kan_fit
from kanbench.data.mnist1d import mnist1d
from kanbench.data.prepare import prepare
from kanbench.data.splits import Split
from kanbench.data.text import char_corpus
from kanbench.harness import contention
from kanbench.harness.timing import collector_paused

if TYPE_CHECKING:
    from kanbench.harness.accuracy import Task
    from kanbench.preparation import Preparation

LM_CONTEXT = 64  # characters per char-lm window


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or Inf loss."""


@dataclass
class Data:
    """A task's data and how to draw a batch and score a split."""

    split: Split | None = None
    corpus: Any = None

    def batch(self, task: Task, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if task.kind == "lm":
            ids = self.corpus.train
            starts = torch.randint(0, len(ids) - LM_CONTEXT - 1, (task.batch,), generator=generator)
            window = torch.stack([ids[s: s + LM_CONTEXT + 1] for s in starts.tolist()])
            return window[:, :-1], window[:, 1:]
        x, y = self.split.train
        idx = torch.randint(0, len(x), (task.batch,), generator=generator)
        return x[idx], y[idx]

    def eval_set(self, task: Task, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        if task.kind == "lm":  # every non-overlapping window of the held-out text (about 65k characters)
            ids = getattr(self.corpus, part)
            n = (len(ids) - 1) // LM_CONTEXT
            window = ids[: n * LM_CONTEXT + 1]
            x = window[:-1].view(n, LM_CONTEXT)
            y = window[1:].view(n, LM_CONTEXT)
            return x, y
        return getattr(self.split, part)


def load_data(task: Task, seed: int, prep: Preparation | None = None) -> Data:
    """The task's splits, inputs prepared by ``prep`` (fitted on the training split) where given."""
    if task.kind == "lm":
        return Data(corpus=char_corpus())
    if task.name in ("digits", "vit-digits"):  # the ViT gets patches of the raw image; its LayerNorms scale them
        split = digits(seed)
    elif task.name == "mnist1d":
        split = mnist1d(seed)
    else:
        split = kan_fit(task.name.split(":", 1)[1], seed)
    return Data(split=prepare(split, prep) if prep is not None else split)


def loss_fn(task: Task) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if task.kind == "regress":
        return F.mse_loss
    if task.kind == "lm":
        return lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return F.cross_entropy


@torch.no_grad()
def score(task: Task, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float | None]:
    """Accuracy, RMSE or bits per character of ``model`` on (x, y), in eval mode (so a prediction never depends on
    the other examples of its chunk), and for bits per character the standard error over the windows."""
    model.eval()
    out = torch.cat([model(x[i: i + 512]) for i in range(0, len(x), 512)])
    model.train()
    if task.kind == "classify":
        return float((out.argmax(-1) == y).float().mean()), None
    if task.kind == "regress":
        return float(F.mse_loss(out, y).sqrt()), None
    per_window = F.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(1) / math.log(2)
    stderr = float(per_window.std() / math.sqrt(len(per_window))) if len(per_window) > 1 else None
    return float(per_window.mean()), stderr


# --- training -----------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    test: float | None  # None for a search run (test never scored)
    best_val: float
    best_step: int
    first_loss: float
    last_loss: float
    seconds: float
    step_seconds: float  # median wall time of one training step (forward, backward, update), evaluation excluded
    active_fraction: float | None = None
    test_stderr: float | None = None  # bits per character: standard error over the test windows
    contention: contention.Contention | None = None  # was the machine busy while this run was timed


def select_better(task: Task, candidate: float, best: float | None) -> bool:
    """Model selection on validation: strictly better than the best so far (the earliest best wins ties)."""
    if best is None:
        return True
    higher = task.metric[2]
    return candidate > best if higher else candidate < best


def adamw(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel (one call updates every parameter; on a CPU since torch 2.4), else its
    per-tensor loop. The update rule is the same; the fused kernel spares the accuracy tasks' small networks most of
    the per-parameter overhead (measured on a 2-core CPU: the optimizer was 20-40 % of a training step)."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a torch without a fused AdamW for these parameters' device
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def train(task: Task, model: nn.Module, data: Data, steps: int, seed: int, device: str = "cpu",
          lr: float | None = None, score_test: bool = True) -> TrainResult:
    """AdamW at ``lr`` (default: the task's) with cosine decay; the validation score every ``eval_every`` steps
    picks the checkpoint whose test score is reported (not even computed when ``score_test`` is False: a search
    run). A NaN/Inf loss raises :class:`NonFiniteLoss`."""
    generator = torch.Generator().manual_seed(10_000 + seed)
    model.to(device)
    optimizer = adamw(list(model.parameters()), task.lr if lr is None else lr, task.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    criterion = loss_fn(task)
    val_x, val_y = (t.to(device) for t in data.eval_set(task, "val"))
    best_val, best_step, best_state = None, 0, copy.deepcopy(model.state_dict())
    losses: list[float] = []
    step_times: list[float] = []
    # timed with the collector paused, as every latency slot is: a full collection's cost is the process's
    # live objects, not the model's (a training step leaves no cycles for it)
    with collector_paused():
        started, counters = time.perf_counter(), contention.snapshot()
        for step in range(1, steps + 1):
            step_started = time.perf_counter()
            x, y = (t.to(device) for t in data.batch(task, generator))
            loss = criterion(model(x), y)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite training loss ({float(loss)}) at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())  # .item() waits for the step, so its time ends here
            step_times.append(time.perf_counter() - step_started)
            if step % task.eval_every == 0 or step == steps:
                val, _ = score(task, model, val_x, val_y)
                if select_better(task, val, best_val):
                    best_val, best_step, best_state = val, step, copy.deepcopy(model.state_dict())
        seconds = time.perf_counter() - started
    busy = contention.between(counters, contention.snapshot())
    model.load_state_dict(best_state)
    test, stderr = None, None
    if score_test:
        test_x, test_y = (t.to(device) for t in data.eval_set(task, "test"))
        test, stderr = score(task, model, test_x, test_y)
    window = max(1, min(task.eval_every, len(losses) // 4))
    return TrainResult(test, float(best_val), best_step, sum(losses[:window]) / window,
                       sum(losses[-window:]) / window, seconds, statistics.median(step_times),
                       spark_active_fraction(model, val_x), stderr, busy)


@torch.no_grad()
def spark_active_fraction(model: nn.Module, x: torch.Tensor) -> float | None:
    """Mean kept fraction over the Spark FFNs of a trained model on held-out inputs (None without any)."""
    sparks = [m for m in model.modules() if hasattr(m, "track_active")]
    if not sparks:
        return None
    for m in sparks:
        m.track_active = True
    model.eval()
    model(x[:256])
    model.train()
    fractions = [m.last_active_fraction for m in sparks]
    for m in sparks:
        m.track_active = False
    return sum(fractions) / len(fractions)

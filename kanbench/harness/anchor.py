"""``mnist1d-reference``: a check that the accuracy harness trains a known model to its known score.

The mnist1d authors (Greydanus 2020, "Scaling down deep learning", and the package's README) publish 68 % test
accuracy for an MLP on MNIST-1D. Their setup, rebuilt here from its description: the generator's default dataset
(4000 training and 1000 test signals of 40 samples, seed 42 — kanbench's ``mnist1d`` at seed 0 draws the same),
raw inputs, a 40 → 100 → 100 → 10 ReLU MLP whose second layer is residual (h + ReLU(W₂h)), Adam at 1e-2 without
weight decay, batches of 100 taken in order through the training set, 8000 steps, no schedule, the last model
scored. The row is ``ok`` when the test accuracy is within :data:`TOLERANCE` of the published figure and
``mismatch`` otherwise: a harness that cannot reproduce it has no business ranking KANs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from kanbench.data.mnist1d import generated

if TYPE_CHECKING:
    from kanbench.harness.accuracy import Task
    from kanbench.harness.base import Rows
    from kanbench.harness.context import RunContext
    from kanbench.harness.results import Config

PUBLISHED = 0.68  # MLP test accuracy on MNIST-1D, the authors' table
TOLERANCE = 0.05  # "within a few points"
LR, BATCH, STEPS = 1e-2, 100, 8000


class ReferenceMLP(nn.Module):
    """The authors' MLP: ``h1 = ReLU(W1 x)``, ``h2 = h1 + ReLU(W2 h1)``, ``y = W3 h2``."""

    def __init__(self, d_in: int = 40, hidden: int = 100, d_out: int = 10) -> None:
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d_in, hidden), nn.Linear(hidden, hidden)
        self.linear3 = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.linear1(x))
        return self.linear3(h + F.relu(self.linear2(h)))


def train_reference(seed: int, steps: int = STEPS) -> tuple[float, int]:
    """Test accuracy of the authors' recipe at ``seed`` (0: their own data seed), and the model's parameters."""
    x, y, x_test, y_test = generated(seed)  # all 4000 training signals in the generator's order: no validation cut
    torch.manual_seed(seed)
    model = ReferenceMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=0.0)
    for step in range(steps):
        start = (step * BATCH) % len(x)
        loss = F.cross_entropy(model(x[start:start + BATCH]), y[start:start + BATCH])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(-1) == y_test).float().mean())
    return accuracy, sum(p.numel() for p in model.parameters())


def rows(ctx: RunContext, config: Config, task: Task) -> Rows:
    """The anchor's rows: its test accuracy (``ok`` within the tolerance, else ``mismatch``) and the target."""
    accuracy, params = train_reference(config.seed, task.steps_for(ctx.plan.accuracy_quick))
    gap = accuracy - PUBLISHED
    status = "ok" if abs(gap) <= TOLERANCE else "mismatch"
    message = (f"the mnist1d authors' MLP and recipe (Adam {LR:g}, batch {BATCH}, {STEPS} steps, raw inputs); "
               f"published {PUBLISHED:.2f}, gap {gap:+.3f} (tolerance ±{TOLERANCE:.2f})")
    return [ctx.row(config, "accuracy", task.name, task.metric[0], accuracy, "fraction", params=params,
                    status=status, message=message),
            ctx.row(config, "accuracy", task.name, "published_test_accuracy", PUBLISHED, "fraction", params=params,
                    message="Greydanus 2020 (mnist1d README table, MLP)")]

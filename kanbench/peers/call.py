"""How an adapter runs a package's layer on kanbench's parameters: the adapter is a subclass of the reference module
(so the gate loads one state dict into both and compares every gradient by name) whose forward maps the
parameters onto the package's parametrization and calls the package's layer with them through
``torch.func.functional_call``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call


class PeerCall:
    """Mixin for a reference layer with ``d_in`` and ``d_out``: :meth:`build_peer` builds the package's layer,
    :meth:`peer_weights` maps the parameters onto it, :meth:`call_peer` runs it on ``(..., d_in)`` inputs."""

    package = ""

    def build_peer(self) -> nn.Module:
        """The package's layer for this geometry (its own parameters are never used: the mapped ones are passed)."""
        raise NotImplementedError

    def peer_weights(self) -> dict[str, torch.Tensor]:
        """The package's parameters by its names, from the reference's: by default the identity (a package that
        names and shapes its parameters as the reference does)."""
        return dict(self.named_parameters())

    def peer_output(self, out: Any) -> torch.Tensor:
        """The output tensor of the package's forward (a layer that returns more than ``y`` overrides this)."""
        return out

    def peer(self, x: torch.Tensor) -> nn.Module:
        """The package's layer, built once per device and dtype and kept outside the module's state, so state dicts
        stay the reference's."""
        peers = self.__dict__.setdefault("_peers", {})
        key = (x.device, x.dtype)
        if key not in peers:
            # nn.Module.to itself: some packages override ``to`` with a narrower signature (pykan takes a device)
            peers[key] = nn.Module.to(self.build_peer(), device=x.device, dtype=x.dtype)
        return peers[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.call_peer(x)

    def call_peer(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        out = functional_call(self.peer(x), self.peer_weights(), (x,))
        return self.peer_output(out).reshape(*lead, self.d_out)

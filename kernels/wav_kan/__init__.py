"""The ``triton`` impl of ``wav_kan``: each Wav-KAN layer's wavelet sum as Triton kernels that evaluate every edge's
wavelet on their tiles (kernels/wav_kan/wavelet_triton.py), so the reference's (N, d_out, d_in) tensors are never
written, forward or backward; the SiLU base path ``Linear(SiLU(x))`` stays torch's. Built from the reference
modules (same parameters and names), so the gate loads one state dict into both.
"""

from __future__ import annotations

import torch

from kanbench.kernels.launch import triton_layer_impl
from kanbench.registry import register_impl
from kanbench.variants.wav_kan import WavKANBlock, WavKANLayer


class FusedWavKANLayer(WavKANLayer):
    """:class:`WavKANLayer` with its wavelet sum in Triton kernels (no (N, d_out, d_in) tensor)."""

    def wavelets(self, x: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.wav_kan.wavelet_triton import wavelet_sum

        return wavelet_sum(x, self.translation, self.scale, self.wavelet_weights)


register_impl("wav_kan", triton_layer_impl(
    "triton", WavKANBlock, WavKANLayer, FusedWavKANLayer,
    description="the wavelet sum in Triton kernels evaluating every edge on its tiles, forward and backward (no "
                "(N, d_out, d_in) tensor); the SiLU base path is torch's",
))

"""The gate's truth over chunks of tokens (``token_state``, kanbench/harness/correctness.py): where it applies, that
it computes the same numbers as the whole batch at once, and that it still catches a wrong impl."""

import pytest
import torch

from kanbench import registry
from kanbench.harness import correctness
from kanbench.harness.results import Config
from kanbench.variants.wav_kan import WavKANBlock

D_MODEL, D_HIDDEN, TOKENS = 16, 40, 24
STATE = 8 * D_MODEL * D_HIDDEN * 2  # wav_kan's declared numbers per token for the block (two layers)


def config(impl="reference", variant="wav_kan", dtype="fp32", tokens=TOKENS):
    return Config(variant, impl, "block", "cpu", dtype, tokens, D_MODEL, D_HIDDEN)


@pytest.fixture
def five_token_chunks(monkeypatch):
    monkeypatch.setattr(correctness, "TRUTH_BYTES", 5 * STATE * 8)


def test_chunks_only_for_a_declared_state_that_would_not_fit(five_token_chunks):
    assert correctness.truth_rows(config()) == 5
    assert correctness.truth_rows(config(tokens=5)) is None  # fits at once
    assert correctness.truth_rows(config(variant="mlp")) is None  # no declared state: never chunked
    assert correctness.truth_rows(config(variant="relu_kan")) is None


def test_at_the_ffn_768_shape_the_wav_kan_truth_fits_a_chunk_the_reference_alone_could_not():
    at_scale = Config("wav_kan", "triton", "block", "cuda", "bf16", 8192, 768, 3072)
    rows = correctness.truth_rows(at_scale)
    assert rows is not None and 1 <= rows < 8192
    assert rows * 8 * 8 * 2 * 768 * 3072 <= correctness.TRUTH_BYTES


def test_a_chunked_run_gives_the_whole_batchs_outputs_and_summed_gradients():
    torch.manual_seed(0)
    module = config().build().double()
    x = torch.randn(TOKENS, D_MODEL, dtype=torch.float64)
    upstream = torch.randn(TOKENS, D_MODEL, dtype=torch.float64)
    whole, chunked = correctness._run(module, x, upstream), correctness._run(module, x, upstream, rows=5)
    assert set(whole) == set(chunked) and len(whole) == 3 + len(list(module.parameters()))
    for key in whole:
        torch.testing.assert_close(chunked[key], whole[key], rtol=1e-12, atol=1e-12)
    forward_only = correctness._run(module, x, upstream, backward=False, rows=5)
    torch.testing.assert_close(forward_only["output_no_grad"], whole["output_no_grad"], rtol=1e-12, atol=1e-12)


class LastTokenOff(WavKANBlock):
    """Off on the last token only, which lies in the last, short chunk: 1 % in fp32, 5 % in bf16 (Wav-KAN's bf16
    reference is itself ~0.8 % off, so the gate allows ~2 % there)."""

    def forward(self, x):
        y = super().forward(x)
        scale = torch.ones(y.shape[0], 1, dtype=y.dtype)
        scale[-1] = 1.05 if y.dtype == torch.bfloat16 else 1.01
        return y * scale


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_the_chunked_gate_passes_a_faithful_impl_and_catches_one_token_off(five_token_chunks, dtype):
    registry.register_impl("wav_kan", registry.Impl("copy", block=WavKANBlock))
    registry.register_impl("wav_kan", registry.Impl("last_token_off", block=LastTokenOff))
    try:
        faithful, wrong = (correctness.gate(c, c.build()) for c in (config("copy", dtype=dtype),
                                                                      config("last_token_off", dtype=dtype)))
    finally:
        registry.unregister_impl("wav_kan", "copy")
        registry.unregister_impl("wav_kan", "last_token_off")
    assert faithful.ok and "chunks of 5 tokens" in faithful.message, faithful.message
    assert not wrong.ok and wrong.status == "mismatch" and "row-wise rel. error" in wrong.message, wrong.message

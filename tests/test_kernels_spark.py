"""Spark FFN impls: the fused statistical top-k (Triton; the interpreter without a GPU) and the sparse decode path
in PyTorch, against the reference."""

import os

import pytest
import torch

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.kernels.spark_ffn.sparse_cpu import SparseCPUSparkFFN
from kanbench.kernels.spark_ffn.topk_triton import statistical_topk_triton
from kanbench.registry import create_block, create_op
from kanbench.variants.spark_ffn import quantile_factor, statistical_topk

CUDA = torch.cuda.is_available()
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEVICES = (["cpu"] if INTERPRETED else []) + (["cuda"] if CUDA else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("shape", "k"), [((7, 300), 24), ((2, 3, 1000), 80), ((1, 13824), 1106)])
def test_fused_statistical_topk_matches_the_reference_forward_and_backward(device, shape, k):
    g = torch.Generator().manual_seed(shape[-1])
    z = torch.randn(*shape, generator=g, dtype=torch.float64)
    up = torch.randn(*shape, generator=g, dtype=torch.float64)
    z_ref = z.clone().requires_grad_()
    (dz_ref,) = torch.autograd.grad(statistical_topk(z_ref, k), z_ref, up)
    z_t = z.float().to(device).requires_grad_()
    out = statistical_topk_triton(z_t, k)
    (dz_t,) = torch.autograd.grad(out, z_t, up.float().to(device))
    assert torch.allclose(out.double().cpu(), statistical_topk(z, k), atol=1e-5)
    assert torch.allclose(dz_t.double().cpu(), dz_ref, atol=1e-5)
    assert out.shape == shape and (out.cpu() > 0).float().mean() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_fused_statistical_topk_in_bf16(device):
    z = torch.randn(4, 2304, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    out = statistical_topk_triton(z.to(device), 184)
    assert out.dtype == torch.bfloat16
    ref = statistical_topk(z.double(), 184)
    assert float((out.double().cpu() - ref).norm() / ref.norm()) < 1e-2


@pytest.mark.parametrize("batch", [1, 8, 40])  # 40 rows: over 256 active neurons, several gather chunks
def test_sparse_decode_equals_the_masked_dense_computation(batch):
    torch.manual_seed(0)
    reference = create_block("spark_ffn", 64, 1000).double()
    sparse = create_block("spark_ffn", 64, 1000, impl="sparse_cpu").double()
    sparse.load_state_dict(reference.state_dict())
    q = torch.randn(batch, 64, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(sparse(q), reference(q), atol=1e-12)
    # the active set is the union over the batch: at least each row's own fraction, at most everything
    reference.track_active = True
    with torch.no_grad():
        reference(q)
    assert sparse.last_union_fraction >= reference.last_active_fraction * (1 - 1e-9)
    if batch == 1:
        assert sparse.last_union_fraction == pytest.approx(reference.last_active_fraction)
    else:
        assert sparse.last_union_fraction > reference.last_active_fraction


def test_sparse_path_trains_with_the_reference_gradients():
    torch.manual_seed(0)
    reference = create_block("spark_ffn", 32, 400).double()
    sparse = SparseCPUSparkFFN(32, 400).double()
    sparse.load_state_dict(reference.state_dict())
    q = torch.randn(5, 32, dtype=torch.float64)
    up = torch.randn(5, 32, dtype=torch.float64)
    reference(q).backward(up)
    sparse(q).backward(up)
    for (name, p), (_, p_sparse) in zip(reference.named_parameters(), sparse.named_parameters(), strict=True):
        assert torch.allclose(p.grad, p_sparse.grad, atol=1e-12), name


def test_sparse_path_rebuilds_its_transposed_weights_when_they_change():
    sparse = create_block("spark_ffn", 32, 400, impl="sparse_cpu")
    q = torch.randn(2, 32)
    with torch.no_grad():
        before = sparse(q)
        sparse.V.mul_(2.0)
        after = sparse(q)
    assert torch.allclose(after, 2 * before, atol=1e-6)


def decode_inputs(batch, d_model, d_ff, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    K = (torch.rand(d_model, d_ff, generator=g) * 2 - 1) / d_model**0.5
    V = (torch.rand(d_model, d_ff, generator=g) * 2 - 1) / d_ff**0.5
    q = torch.randn(batch, d_model, generator=g)
    return q.to(dtype), K.to(dtype), V.to(dtype)


# d_ff 2500: three compaction blocks, the last partial; d_model 200 - r 90 = 110 gate inputs (not a multiple of the
# 128- or 32-wide chunk); 200 output columns (not a multiple of 128 or 32); batch 17 pads to a 32-row tile
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [1, 3, 17])
@pytest.mark.parametrize("tensor_cores", [True, False], ids=["tensor-core tiles", "CUDA-core tiles"])
def test_triton_decode_equals_the_dense_computation_with_its_masks(device, batch, tensor_cores, monkeypatch):
    from kanbench.kernels.spark_ffn import decode_triton
    from kanbench.kernels.spark_ffn.decode_triton import sparse_decode

    widths = decode_triton.tile_widths(tensor_cores)  # a T4's (sm_75) tiles, forced on any device
    monkeypatch.setattr(decode_triton, "tile_widths", lambda _: widths)

    d_model, d_ff, r, k = 200, 2500, 90, 200
    q, K, V = decode_inputs(batch, d_model, d_ff, seed=batch)
    c = quantile_factor(k, d_ff)
    args = (q.to(device), K.to(device), K[r:].T.contiguous().to(device), V.T.contiguous().to(device), r, c)
    y, z, theta, index, count = sparse_decode(*args)
    # the predictor and threshold: the reference's, in float64
    z64 = q.double()[:, :r] @ K.double()[:r]
    assert torch.allclose(z.double().cpu(), z64, atol=1e-5)
    var, mean = torch.var_mean(z.double().cpu(), dim=-1, correction=0)
    assert torch.allclose(theta.double().cpu(), mean + var.sqrt() * c, atol=1e-5)
    # the active index list: exactly the union of the rows' masks, ascending
    kept = z.cpu().float() > theta.cpu()[:, None]
    union = kept.any(0).nonzero().squeeze(-1)
    n = int(count)
    assert n == union.numel() and 0 < n < d_ff
    assert torch.equal(index[:n].cpu().long(), union)
    if batch > 1:
        assert n > kept.sum(1).max()  # the union is larger than any one row's set
    # the output: the dense computation with the kernel's masks, in float64
    h = torch.nn.functional.gelu(torch.relu(z.double().cpu() - theta.double().cpu()[:, None]))
    dense = (h * (q.double()[:, r:] @ K.double()[r:])) @ V.double().T
    assert float((y.double().cpu() - dense).norm() / dense.norm()) < 1e-5
    # deterministic: the second stage sums in a fixed order
    assert torch.equal(sparse_decode(*args)[0], y)


@pytest.mark.parametrize("device", DEVICES)
def test_triton_decode_in_bf16_and_its_reported_fractions(device):
    torch.manual_seed(0)
    reference = create_block("spark_ffn", 128, 1500).to(device=device, dtype=torch.bfloat16)
    fused = create_block("spark_ffn", 128, 1500, impl="triton").to(device=device, dtype=torch.bfloat16)
    fused.load_state_dict(reference.state_dict())
    q = torch.randn(4, 128).to(device=device, dtype=torch.bfloat16)
    reference.track_active = fused.track_active = True
    with torch.no_grad():
        assert fused.uses_decode_path(q)
        y, y_ref = fused(q), reference(q.double().to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    y64 = reference.double()(q.double()).detach()
    assert float((y.double() - y64).norm() / y64.norm()) < 2e-2
    assert float((y_ref.double() - y64).norm() / y64.norm()) < 2e-2
    # the kernels' union and per-row fractions against the reference's (θ rounds differently in bf16: a few
    # neurons at the threshold may differ)
    assert 0.08 < fused.last_union_fraction < 1
    assert fused.last_union_fraction == pytest.approx(reference.last_union_fraction, abs=5 / 1500)
    assert fused.last_active_fraction == pytest.approx(reference.last_active_fraction, abs=5 / 1500)


@pytest.mark.parametrize("device", DEVICES)
def test_triton_impl_takes_the_training_path_with_gradients_and_for_large_batches(device):
    module = create_block("spark_ffn", 32, 400, impl="triton").to(device)
    small, large = torch.randn(8, 32, device=device), torch.randn(65, 32, device=device)
    assert not module.uses_decode_path(small)  # the parameters need gradients: training path
    with torch.no_grad():
        assert module.uses_decode_path(small) and not module.uses_decode_path(large)
    module.requires_grad_(False)
    assert module.uses_decode_path(small) and not module.uses_decode_path(small.clone().requires_grad_())
    # the training path's gradients are the reference's
    reference = create_block("spark_ffn", 32, 400).to(device)
    module.requires_grad_(True).load_state_dict(reference.state_dict())
    up = torch.randn(8, 32, device=device)
    module(small).backward(up)
    reference(small).backward(up)
    assert torch.allclose(module.K.grad, reference.K.grad, atol=1e-5)


def test_triton_decode_rejects_batches_it_cannot_take():
    from kanbench.kernels.spark_ffn.decode_triton import sparse_decode

    if not INTERPRETED and not CUDA:
        pytest.skip("needs TRITON_INTERPRET=1 or a GPU to reach the shape checks")
    device = "cuda" if CUDA and not INTERPRETED else "cpu"
    q, K, V = decode_inputs(65, 32, 400, seed=0)
    with pytest.raises(ValueError, match="1..64 rows"):
        sparse_decode(q.to(device), K.to(device), K[16:].T.contiguous().to(device), V.T.contiguous().to(device),
                      16, 1.4)
    with pytest.raises(ValueError, match="k2_rows must be"):
        sparse_decode(q[:2].to(device), K.to(device), K.T.contiguous().to(device), V.T.contiguous().to(device),
                      16, 1.4)


@pytest.mark.parametrize("impl", ["sparse_cpu", "triton"])
def test_spark_impls_pass_the_harness_gate(impl):
    if impl == "triton" and not DEVICES:
        pytest.skip("Triton needs a GPU or TRITON_INTERPRET=1")
    device = "cuda" if impl == "triton" and CUDA and not INTERPRETED else "cpu"
    config = Config("spark_ffn", impl, "block", device, "fp32", 16, 64, 512)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


@pytest.mark.parametrize("device", DEVICES)
def test_spark_op_form_is_the_fused_statistical_topk_and_passes_the_gate(device):
    module = create_op("spark_ffn", 1000, impl="triton")
    assert type(module).__name__ == "TritonStatisticalTopK" and module.k == 80
    config = Config("spark_ffn", "triton", "op", device, "fp32", 12, 1000, 1000)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


@pytest.mark.parametrize("device", DEVICES)
def test_rows_longer_than_one_block_are_processed_in_chunks(device, monkeypatch):
    import kanbench.kernels.spark_ffn.topk_triton as topk

    monkeypatch.setattr(topk, "MAX_ROW_BLOCK", 256)  # rows of 1000 take three chunked passes at this size
    assert topk.row_block(1000) == (256, True) and topk.row_block(200) == (256, False)
    g = torch.Generator().manual_seed(9)
    z = torch.randn(3, 1000, generator=g, dtype=torch.float64)
    up = torch.randn(3, 1000, generator=g, dtype=torch.float64)
    z_ref = z.clone().requires_grad_()
    (dz_ref,) = torch.autograd.grad(statistical_topk(z_ref, 80), z_ref, up)
    z_t = z.float().to(device).requires_grad_()
    out = statistical_topk_triton(z_t, 80)
    (dz_t,) = torch.autograd.grad(out, z_t, up.float().to(device))
    assert torch.allclose(out.double().cpu(), statistical_topk(z, 80), atol=1e-5)
    assert torch.allclose(dz_t.double().cpu(), dz_ref, atol=1e-5)
    # the decode path's threshold takes the same chunked statistics
    from kanbench.kernels.spark_ffn.decode_triton import sparse_decode

    q, K, V = decode_inputs(2, 64, 1000, seed=3)
    c = quantile_factor(80, 1000)
    _, zz, theta, _, _ = sparse_decode(q.to(device), K.to(device), K[32:].T.contiguous().to(device),
                                       V.T.contiguous().to(device), 32, c)
    var, mean = torch.var_mean(zz.double().cpu(), dim=-1, correction=0)
    assert torch.allclose(theta.double().cpu(), mean + var.sqrt() * c, atol=1e-5)


gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU; the interpreter tests above cover the same kernels")


@gpu
@pytest.mark.parametrize("batch", [1, 8])
def test_compiled_decode_path_at_gemma_2b_size(batch):
    from kanbench.kernels.spark_ffn.decode_triton import sparse_decode

    q, K, V = decode_inputs(batch, 2304, 13824, seed=batch, dtype=torch.bfloat16)
    r, c = 1024, quantile_factor(1106, 13824)
    q, K, V = q.cuda(), K.cuda(), V.cuda()
    y, z, theta, index, count = sparse_decode(q, K, K[r:].T.contiguous(), V.T.contiguous(), r, c)
    kept = z.float() > theta[:, None]
    assert int(count) == int(kept.any(0).sum())
    h = torch.nn.functional.gelu(torch.relu(z.double() - theta.double()[:, None]))
    dense = (h * (q.double()[:, r:] @ K.double()[r:])) @ V.double().T
    assert float((y.double() - dense).norm() / dense.norm()) < 1e-2  # bf16 weights, fp32 accumulation


@gpu
def test_decode_path_is_captured_by_a_cuda_graph():
    # no host sync anywhere (the active count stays on the device): the whole path replays from a graph
    module = create_block("spark_ffn", 256, 2048, impl="triton").cuda().requires_grad_(False)
    q = torch.randn(4, 256, device="cuda")
    expected = module(q)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        module(q)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = module(q)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, expected)

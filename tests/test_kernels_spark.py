"""Spark FFN impls: the fused statistical top-k (Triton; the interpreter without a GPU) and the sparse decode path
in PyTorch, against the reference."""

import os

import pytest
import torch

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.harness.workload import build
from kanbench.kernels.spark_sparse_cpu import SparseCPUSparkFFN
from kanbench.kernels.spark_topk_triton import statistical_topk_triton
from kanbench.registry import create_block
from kanbench.variants.spark_ffn import statistical_topk

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


@pytest.mark.parametrize("batch", [1, 8])
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


@pytest.mark.parametrize("impl", ["sparse_cpu", "triton"])
def test_spark_impls_pass_the_harness_gate(impl):
    if impl == "triton" and not DEVICES:
        pytest.skip("Triton needs a GPU or TRITON_INTERPRET=1")
    device = "cuda" if impl == "triton" and CUDA and not INTERPRETED else "cpu"
    config = Config("spark_ffn", impl, "block", device, "fp32", 16, 64, 512)
    result = check_against_reference(config, build(config))
    assert result.ok, result.message

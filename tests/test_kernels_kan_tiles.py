"""The fused KAN-layer kernels at every tile their GPU autotuner may pick (kernels/kan_linear_tiles.py), checked
under the interpreter: each tile of the spaces is forced as the fixed tile and the layer held to its float64
reference, output and every gradient, at widths that leave every tile partly masked. On a GPU the autotuner
picks among these tiles by time; this checks that whichever it picks computes the same layer.

Interpreter only (TRITON_INTERPRET=1, set in conftest.py without a GPU): on a GPU with tensor-core dots (sm_80 on)
the fixed tile serves fp32 only and the kernel tests run the autotuned ones; on older GPUs every dtype takes the
fixed tile, which the interpreter runs in every kernel test, and which the last test here forces on a GPU in 16 bits.
"""

import pytest
import torch
from kernel_devices import INTERPRETED, assert_matches_float64, gpu

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.kernels import kan_linear_tiles as tiles
from kanbench.kernels.grkan import fused_triton
from kanbench.registry import create_layer

interpreted = pytest.mark.skipif(not INTERPRETED, reason="forces tiles through the interpreter's fixed-tile path; "
                                                         "a GPU runs the autotuned kernels in the other kernel tests")
LAYERS = [("relu_kan", {}), ("bspline_kan", {}), ("cheby_kan", {"degree": 3}), ("fourier_kan", {"frequencies": 2})]


@interpreted
def test_every_dx_tile_has_the_block_m_the_partial_sums_are_sized_for():
    assert {tile[0] for tile in tiles.SPACES["dx"]} == {tiles.dx_block_m(fixed=False)}


@interpreted
@pytest.mark.parametrize("choice", range(3))
@pytest.mark.parametrize(("variant", "hp"), LAYERS)
def test_every_autotuned_tile_computes_the_layer(monkeypatch, choice, variant, hp):
    forced = {kernel: space[choice][:3] for kernel, space in tiles.SPACES.items()}
    monkeypatch.setattr(tiles, "FIXED", forced)
    torch.manual_seed(choice)
    rows, d_in, d_out = 70, 40, 264  # past one tile on every side but d_in (past 32), none a tile multiple
    reference = create_layer(variant, d_in, d_out, **hp).double()
    fused = create_layer(variant, d_in, d_out, impl="triton", **hp)
    fused.load_state_dict(reference.state_dict())
    g = torch.Generator().manual_seed(d_in)
    x = (torch.rand(rows, d_in, generator=g, dtype=torch.float64) * 2.4 - 1.2).float().double()
    dy = torch.randn(rows, d_out, generator=g, dtype=torch.float64)
    assert_matches_float64(reference, fused, x, dy, "cpu")


@gpu
@pytest.mark.parametrize(("variant", "impl"), [("relu_kan", "triton"), ("grkan", "triton_fused")])
def test_gpu_block_on_the_tiles_of_a_gpu_without_tensor_core_dots_passes_the_gate(monkeypatch, variant, impl):
    """What a T4 launches (16-bit operands at the fixed tile; the fused matmul's CUDA-core space), forced on this
    GPU: the launch paths no sm_80+ run takes, held to the reference by the harness's gate. ReLU-KAN's (its
    interval gradients' partial sums are sized by the tile) stands for the four families, which share the launch
    code; bf16 for both 16-bit dtypes. Few compiles: a lent GPU's minutes are few."""
    monkeypatch.setattr(tiles, "dots_on_tensor_cores", lambda device: False)
    monkeypatch.setattr(fused_triton, "dots_on_tensor_cores", lambda device: False)
    config = Config(variant, impl, "block", "cuda", "bf16", 200, 96, 264)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message

"""Fused kernels for kanbench's variants, installed as ``kanbench.kernels`` (never as a top-level ``kernels``).

One folder per variant, holding every kernel impl of it (as tritonbench keeps one folder per operator), and the
helpers they share beside them:

    grkan/         triton (rational_triton.py), triton_fused (fused_triton.py), cuda (cuda.py + rational_cuda.*)
    bspline_kan/   triton, triton_unfused: kan_linear_triton.py with closed-form B-spline bases (and SiLU) on the tiles
    relu_kan/      triton, triton_unfused: kan_linear_triton.py with ReLU-KAN's bumps on the tiles
    cheby_kan/     triton, triton_unfused: kan_linear_triton.py with SiLU and the Chebyshev recurrence on the tiles
    fourier_kan/   triton, triton_unfused: kan_linear_triton.py with SiLU, cos(f·x) and sin(f·x) on the tiles
    wav_kan/       triton (wavelet_triton.py): every edge's wavelet evaluated on the tiles, forward and backward
    af_kan/        triton (attention_triton.py): features, global attention and LayerNorm, one pass per row
    spark_ffn/     triton (topk_triton.py, decode_triton.py), sparse_cpu (sparse_cpu.py), decode_layout.py
    kan_linear_triton.py   a KAN layer's matmuls with its features computed on the tiles (forward, dW, dx)
    kan_features_triton.py the features those matmuls compute (one family per variant) and their slopes
    kan_linear_tiles.py    those matmuls' tiles: autotuned with 16-bit operands on sm_80+, fixed otherwise
    kan_linear_unfused.py  the same layer unfused (triton_unfused): a feature pass, torch's matmuls, the dx sum
    launch.py      whether Triton can run here, launch checks;  triton_dot.py  the shared tl.dot
    aot.py         compiles every Triton kernel for a GPU architecture without one (registers, spills)

Importing this package registers every kernel impl with the registry (each folder's ``__init__``). Triton itself is
imported only when a kernel runs, and each impl says why it cannot run on a machine (no GPU, no Triton), so the
package imports everywhere.
"""

from kanbench.kernels import af_kan, bspline_kan, cheby_kan, fourier_kan, grkan, relu_kan, spark_ffn, wav_kan  # noqa: F401

"""AF-KAN's features, global attention and LayerNorm computed on chunks of each input row: the (N, d_in, G+k)
feature tensor is never written, forward or backward (kanbench/variants/af_kan.py has the math). Per row x (d_in)
and basis j (s_j, e_j, the attention Linear α, β, T = max(τ, 1)):

    R_ij = func(act(x_i − s_j), act(e_j − x_i)),   F = (R − lo)·inv,  inv = 1/(hi − lo)
    l_i = (Σ_j α_j F_ij + β)/T,   w = softmax_i(l),   S_i = Σ_j F_ij,   z = w ⊙ S
    h = act(n),  n = γ ⊙ ẑ + δ,  ẑ = (z − μ)·rstd,  rstd = (var z + eps)^(−½)

with lo, hi the min and max of R over the whole batch (func_norm 'batch'), over the row ('sample'), or (0, 1)
('none'). ``h`` (N, d_in) goes to the output matmul ``y = h·Wᵀ``, left to torch (cuBLAS): softmax and LayerNorm
need a whole row before any output column, so a matmul prologue would still need a first pass writing a tensor of
h's size; writing h itself keeps the GEMM at its floor.

A row is processed in chunks of CHUNK columns (hidden.py picks it: a whole 3072-wide row in registers spills), each
kernel recomputing R from x:

    forward   extremes    per program, min and max of R (batch mode)
              row stats   per row lo, hi, the softmax's max m and sum Z (online, rescaled as the max grows), then
                          μ and rstd of z merged over the chunks (Chan et al.) from the very z values the other
                          kernels recompute: z − μ cancels, and a μ from another rounding path would shift a
                          whole row coherently (measured: 4× the reference's error in the next layer's gradients)
              hidden      h, elementwise given the row stats (grid: rows × chunks)
    backward  sums        per row c1 = Σ dẑ ⊙ ẑ, c2 = Σ dẑ, then (a second pass) Σ_i w_i dw_i from the very dz the
                          grads kernel computes: dw − Σ w ⊙ dw cancels, as z − μ does in the forward
              grads       elementwise given those (grid: rows × chunks):
                          dn = dh ⊙ act'(n),  dγ += dn ⊙ ẑ,  dδ += dn,  dẑ = γ ⊙ dn,  dz = rstd·(dẑ − (c2 + ẑ·c1)/d)
                          dl = w ⊙ (dz ⊙ S − Σ w ⊙ dw),  dT = −Σ dl ⊙ (l − l̄) / T,  dq = dl/T,  dS = dz ⊙ w
                          dF_ij = α_j·dq_i + dS_i,  dα_j += Σ_i dq_i F_ij,  dβ += Σ_i dq_i,  dR = dF·inv
                          dx_i += Σ_j dR_ij·(∂R/∂u − ∂R/∂v),  ds_j −= Σ dR·∂R/∂u,  de_j += Σ dR·∂R/∂v
              ties        the min-max's own gradient, dlo = Σ dF·(F − 1)·inv and dhi = −Σ dF·F·inv, shared evenly
                          by the elements equal to lo (hi), as torch's amin/amax do: only rows holding one are
                          recomputed. R is recomputed by the same jitted code, so R = lo holds bit for bit.

Parameter gradients are per-program partial sums added in a fixed order (deterministic, no atomics). Everything is
computed in fp32 whatever the input dtype.
"""

from __future__ import annotations

import triton
import triton.language as tl

from kanbench.kernels.af_kan.pointwise_triton import act, act_grad, feature, features

BATCH, SAMPLE, NONE = 0, 1, 2  # NORM
STATS = 7  # per row: lo, hi, m, Z, μ, rstd, l̄ (the logits' mean)


@triton.jit
def _row_x(x_ptr, row, cols, d_in):
    """The chunk ``cols`` of row ``row`` of x, in fp32 (0 off the row), and its mask."""
    ok = cols < d_in
    return tl.load(x_ptr + row * d_in + cols, mask=ok, other=0.0).to(tl.float32), ok


@triton.jit
def _row_extremes(x_ptr, row, d_in, s_ptr, e_ptr, ACT: tl.constexpr, FUNC: tl.constexpr, N_BASES: tl.constexpr,
                  CHUNK: tl.constexpr):
    """(min, max) of R over one row, every basis, chunk by chunk."""
    lo = float("inf")
    hi = float("-inf")
    for c0 in range(0, d_in, CHUNK):
        x, ok = _row_x(x_ptr, row, c0 + tl.arange(0, CHUNK), d_in)
        for j in tl.static_range(N_BASES):
            r = feature(x, s_ptr, e_ptr, j, ACT, FUNC)
            lo = tl.minimum(lo, tl.min(tl.where(ok, r, float("inf")), axis=0))
            hi = tl.maximum(hi, tl.max(tl.where(ok, r, float("-inf")), axis=0))
    return lo, hi


@triton.jit
def _chunk(x, ok, s_ptr, e_ptr, alpha_ptr, beta, T, lo, inv, ACT: tl.constexpr, FUNC: tl.constexpr,
           N_BASES: tl.constexpr):
    """A chunk's S = Σ_j F (0 off the row) and logits l (−inf off the row)."""
    S = tl.zeros(x.shape, tl.float32)
    q = tl.zeros(x.shape, tl.float32)
    for j in tl.static_range(N_BASES):
        r = feature(x, s_ptr, e_ptr, j, ACT, FUNC)
        f = (r - lo) * inv
        S += f
        q += tl.load(alpha_ptr + j).to(tl.float32) * f
    return tl.where(ok, S, 0.0), tl.where(ok, (q + beta) / T, float("-inf"))


@triton.jit
def _row_chunk(x_ptr, stats_ptr, row, cols, d_in):
    """The chunk ``cols`` of row ``row``: x (fp32), its mask, and the row's stats."""
    x, ok = _row_x(x_ptr, row, cols, d_in)
    st = stats_ptr + row * 7  # STATS
    lo, hi = tl.load(st), tl.load(st + 1)
    return x, ok, lo, hi, tl.load(st + 2), tl.load(st + 3), tl.load(st + 4), tl.load(st + 5)


@triton.jit
def _dzhat(S, l, ok, m, Z, mu, rstd, gamma_ptr, delta_ptr, dh_row_ptr, cols, ACT: tl.constexpr):
    """A chunk's ẑ, dn = dh ⊙ act'(γ ⊙ ẑ + δ) and dẑ = γ ⊙ dn (zero off the row), the same bits in every kernel."""
    gamma = tl.load(gamma_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    delta = tl.load(delta_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    dh = tl.load(dh_row_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    zhat = tl.where(ok, (tl.exp(l - m) / Z * S - mu) * rstd, 0.0)
    dn = tl.where(ok, dh * act_grad(gamma * zhat + delta, ACT), 0.0)
    return zhat, dn, gamma * dn


@triton.jit
def _batch_extremes_kernel(x_ptr, s_ptr, e_ptr, part_ptr, M, d_in, ACT: tl.constexpr, FUNC: tl.constexpr,
                           N_BASES: tl.constexpr, CHUNK: tl.constexpr):
    """This program's (min, max) of R over its rows (pid, pid + P, ...)."""
    pid = tl.program_id(0)
    lo = float("inf")
    hi = float("-inf")
    for row in range(pid, M, tl.num_programs(0)):
        row_lo, row_hi = _row_extremes(x_ptr, row, d_in, s_ptr, e_ptr, ACT, FUNC, N_BASES, CHUNK)
        lo = tl.minimum(lo, row_lo)
        hi = tl.maximum(hi, row_hi)
    tl.store(part_ptr + 2 * pid, lo)
    tl.store(part_ptr + 2 * pid + 1, hi)


@triton.jit
def _row_stats_kernel(x_ptr, s_ptr, e_ptr, alpha_ptr, beta_ptr, t_ptr, range_ptr, stats_ptr, M, d_in, eps,
                      ACT: tl.constexpr, FUNC: tl.constexpr, NORM: tl.constexpr, N_BASES: tl.constexpr,
                      CHUNK: tl.constexpr):
    """Per row: lo, hi, the softmax's max m and normaliser Z, and z's mean μ and rstd, online over the chunks."""
    beta = tl.load(beta_ptr).to(tl.float32)
    T = tl.load(t_ptr).to(tl.float32)
    for row in range(tl.program_id(0), M, tl.num_programs(0)):
        if NORM == 0:
            lo = tl.load(range_ptr)
            hi = tl.load(range_ptr + 1)
        elif NORM == 1:
            lo, hi = _row_extremes(x_ptr, row, d_in, s_ptr, e_ptr, ACT, FUNC, N_BASES, CHUNK)
        else:
            lo = 0.0
            hi = 1.0
        inv = 1.0 / (hi - lo)
        m = float("-inf")
        Z = 0.0
        l_sum = 0.0
        for c0 in range(0, d_in, CHUNK):  # the softmax's max and normaliser, rescaled as the max grows
            x, ok = _row_x(x_ptr, row, c0 + tl.arange(0, CHUNK), d_in)
            _, l = _chunk(x, ok, s_ptr, e_ptr, alpha_ptr, beta, T, lo, inv, ACT, FUNC, N_BASES)
            m_new = tl.maximum(m, tl.max(l, axis=0))
            Z = Z * tl.exp(m - m_new) + tl.sum(tl.exp(l - m_new), axis=0)
            m = m_new
            l_sum += tl.sum(tl.where(ok, l, 0.0), axis=0)
        seen = 0.0
        mean = 0.0
        m2 = 0.0
        for c0 in range(0, d_in, CHUNK):  # z's mean and M2 from the very z the later kernels compute
            x, ok = _row_x(x_ptr, row, c0 + tl.arange(0, CHUNK), d_in)
            S, l = _chunk(x, ok, s_ptr, e_ptr, alpha_ptr, beta, T, lo, inv, ACT, FUNC, N_BASES)
            z = tl.exp(l - m) / Z * S
            count = tl.sum(ok.to(tl.float32), axis=0)
            chunk_mean = tl.sum(tl.where(ok, z, 0.0), axis=0) / count
            chunk_m2 = tl.sum(tl.where(ok, (z - chunk_mean) * (z - chunk_mean), 0.0), axis=0)
            delta = chunk_mean - mean
            total = seen + count
            mean += delta * count / total
            m2 += chunk_m2 + delta * delta * seen * count / total
            seen = total
        st = stats_ptr + row * 7  # STATS
        tl.store(st, lo)
        tl.store(st + 1, hi)
        tl.store(st + 2, m)
        tl.store(st + 3, Z)
        tl.store(st + 4, mean)
        tl.store(st + 5, 1.0 / tl.sqrt(m2 / d_in + eps))
        tl.store(st + 6, l_sum / d_in)


@triton.jit
def _hidden_kernel(x_ptr, s_ptr, e_ptr, alpha_ptr, beta_ptr, t_ptr, gamma_ptr, delta_ptr, stats_ptr, h_ptr, M, d_in,
                   ACT: tl.constexpr, FUNC: tl.constexpr, N_BASES: tl.constexpr, CHUNK: tl.constexpr):
    """h = act(γ ⊙ ẑ + δ) for the chunk program_id(1) of this program's rows."""
    cols = tl.program_id(1) * CHUNK + tl.arange(0, CHUNK)
    beta = tl.load(beta_ptr).to(tl.float32)
    T = tl.load(t_ptr).to(tl.float32)
    gamma = tl.load(gamma_ptr + cols, mask=cols < d_in, other=0.0).to(tl.float32)
    delta = tl.load(delta_ptr + cols, mask=cols < d_in, other=0.0).to(tl.float32)
    for row in range(tl.program_id(0), M, tl.num_programs(0)):
        x, ok, lo, hi, m, Z, mu, rstd = _row_chunk(x_ptr, stats_ptr, row, cols, d_in)
        S, l = _chunk(x, ok, s_ptr, e_ptr, alpha_ptr, beta, T, lo, 1.0 / (hi - lo), ACT, FUNC, N_BASES)
        zhat = (tl.exp(l - m) / Z * S - mu) * rstd
        tl.store(h_ptr + row * d_in + cols, act(gamma * zhat + delta, ACT).to(h_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _backward_sums_kernel(x_ptr, s_ptr, e_ptr, alpha_ptr, beta_ptr, t_ptr, gamma_ptr, delta_ptr, stats_ptr, dh_ptr,
                          sums_ptr, M, d_in, ACT: tl.constexpr, FUNC: tl.constexpr, N_BASES: tl.constexpr,
                          CHUNK: tl.constexpr):
    """Per row: c1/d, c2/d and Σ w ⊙ dw (LayerNorm's and the softmax's backward reductions)."""
    beta = tl.load(beta_ptr).to(tl.float32)
    T = tl.load(t_ptr).to(tl.float32)
    for row in range(tl.program_id(0), M, tl.num_programs(0)):
        c1 = 0.0
        c2 = 0.0
        for c0 in range(0, d_in, CHUNK):  # LayerNorm's backward sums
            cols = c0 + tl.arange(0, CHUNK)
            x, ok, lo, hi, m, Z, mu, rstd = _row_chunk(x_ptr, stats_ptr, row, cols, d_in)
            S, l = _chunk(x, ok, s_ptr, e_ptr, alpha_ptr, beta, T, lo, 1.0 / (hi - lo), ACT, FUNC, N_BASES)
            zhat, _, dzhat = _dzhat(S, l, ok, m, Z, mu, rstd, gamma_ptr, delta_ptr, dh_ptr + row * d_in, cols, ACT)
            c1 += tl.sum(dzhat * zhat, axis=0)
            c2 += tl.sum(dzhat, axis=0)
        c1 = c1 / d_in
        c2 = c2 / d_in
        w_dw = 0.0
        for c0 in range(0, d_in, CHUNK):  # the softmax's Σ w ⊙ dw, from the very dz the grads kernel computes
            cols = c0 + tl.arange(0, CHUNK)
            x, ok, lo, hi, m, Z, mu, rstd = _row_chunk(x_ptr, stats_ptr, row, cols, d_in)
            S, l = _chunk(x, ok, s_ptr, e_ptr, alpha_ptr, beta, T, lo, 1.0 / (hi - lo), ACT, FUNC, N_BASES)
            zhat, _, dzhat = _dzhat(S, l, ok, m, Z, mu, rstd, gamma_ptr, delta_ptr, dh_ptr + row * d_in, cols, ACT)
            w = tl.exp(l - m) / Z
            w_dw += tl.sum(tl.where(ok, w * (rstd * (dzhat - c2 - zhat * c1) * S), 0.0), axis=0)
        tl.store(sums_ptr + row * 3, c1)
        tl.store(sums_ptr + row * 3 + 1, c2)
        tl.store(sums_ptr + row * 3 + 2, w_dw)


@triton.jit
def _backward_kernel(x_ptr, s_ptr, e_ptr, alpha_ptr, beta_ptr, t_ptr, gamma_ptr, delta_ptr, stats_ptr, dh_ptr,
                     sums_ptr, dx_ptr, vec_part_ptr, small_part_ptr, tie_ptr, M, d_in, ACT: tl.constexpr,
                     FUNC: tl.constexpr, NORM: tl.constexpr, N_BASES: tl.constexpr, BLOCK_J: tl.constexpr,
                     CHUNK: tl.constexpr):
    """dx for the chunk program_id(1) of this program's rows (the min-max's own gradient aside: ``_ties_kernel``),
    the partial sums of dγ, dδ (vec_part) and ds, de, dα, dβ, dT (small_part), and per row and chunk Σ dF·∂F/∂lo,
    Σ dF·∂F/∂hi and the counts of R = lo, R = hi (tie)."""
    pid, chunk = tl.program_id(0), tl.program_id(1)
    cols = chunk * CHUNK + tl.arange(0, CHUNK)
    js = tl.arange(0, BLOCK_J)
    beta = tl.load(beta_ptr).to(tl.float32)
    T = tl.load(t_ptr).to(tl.float32)
    dgamma = tl.zeros([CHUNK], tl.float32)
    ddelta = tl.zeros([CHUNK], tl.float32)
    ds = tl.zeros([BLOCK_J], tl.float32)
    de = tl.zeros([BLOCK_J], tl.float32)
    dalpha = tl.zeros([BLOCK_J], tl.float32)
    dbeta = 0.0
    dT = 0.0
    for row in range(pid, M, tl.num_programs(0)):
        x, ok, lo, hi, m, Z, mu, rstd = _row_chunk(x_ptr, stats_ptr, row, cols, d_in)
        inv = 1.0 / (hi - lo)
        S, l = _chunk(x, ok, s_ptr, e_ptr, alpha_ptr, beta, T, lo, inv, ACT, FUNC, N_BASES)
        zhat, dn, dzhat = _dzhat(S, l, ok, m, Z, mu, rstd, gamma_ptr, delta_ptr, dh_ptr + row * d_in, cols, ACT)
        w = tl.exp(l - m) / Z
        dgamma += dn * zhat
        ddelta += dn
        dz = rstd * (dzhat - tl.load(sums_ptr + row * 3 + 1) - zhat * tl.load(sums_ptr + row * 3))
        dl = tl.where(ok, w * (dz * S - tl.load(sums_ptr + row * 3 + 2)), 0.0)
        l_mean = tl.load(stats_ptr + row * 7 + 6)
        dT -= tl.sum(dl * tl.where(ok, l - l_mean, 0.0), axis=0) / T  # Σ dl = 0: centred, nothing to cancel
        dq = dl / T
        dbeta += tl.sum(dq, axis=0)
        dS = dz * w
        dx = tl.zeros([CHUNK], tl.float32)
        tie_lo = 0.0
        tie_hi = 0.0
        count_lo = 0.0
        count_hi = 0.0
        for j in tl.static_range(N_BASES):
            r, r_u, r_v = features(x, s_ptr, e_ptr, j, ACT, FUNC)
            f = (r - lo) * inv
            df = tl.where(ok, tl.load(alpha_ptr + j).to(tl.float32) * dq + dS, 0.0)
            dr = df * inv
            dx += dr * (r_u - r_v)
            at_j = js == j
            dalpha += tl.where(at_j, tl.sum(dq * f, axis=0), 0.0)
            ds += tl.where(at_j, -tl.sum(dr * r_u, axis=0), 0.0)
            de += tl.where(at_j, tl.sum(dr * r_v, axis=0), 0.0)
            if NORM != 2:
                tie_lo += tl.sum(df * (f - 1.0), axis=0) * inv
                tie_hi -= tl.sum(df * f, axis=0) * inv
                count_lo += tl.sum(tl.where(ok & (r == lo), 1.0, 0.0), axis=0)
                count_hi += tl.sum(tl.where(ok & (r == hi), 1.0, 0.0), axis=0)
        tl.store(dx_ptr + row * d_in + cols, dx.to(dx_ptr.dtype.element_ty), mask=ok)
        if NORM != 2:
            tie = tie_ptr + (row * tl.num_programs(1) + chunk) * 4
            tl.store(tie, tie_lo)
            tl.store(tie + 1, tie_hi)
            tl.store(tie + 2, count_lo)
            tl.store(tie + 3, count_hi)
    part = pid * tl.num_programs(1) + chunk
    tl.store(vec_part_ptr + 2 * pid * d_in + cols, dgamma, mask=cols < d_in)
    tl.store(vec_part_ptr + (2 * pid + 1) * d_in + cols, ddelta, mask=cols < d_in)
    small = small_part_ptr + part * (3 * N_BASES + 2)
    j_ok = js < N_BASES
    tl.store(small + js, ds, mask=j_ok)
    tl.store(small + N_BASES + js, de, mask=j_ok)
    tl.store(small + 2 * N_BASES + js, dalpha, mask=j_ok)
    tl.store(small + 3 * N_BASES, dbeta)
    tl.store(small + 3 * N_BASES + 1, dT)


@triton.jit
def _ties_kernel(x_ptr, s_ptr, e_ptr, stats_ptr, coef_ptr, dx_ptr, part_ptr, M, d_in, ACT: tl.constexpr,
                 FUNC: tl.constexpr, N_BASES: tl.constexpr, BLOCK_J: tl.constexpr, CHUNK: tl.constexpr):
    """Adds the min-max's gradient to dx where R = lo (hi) for rows that hold such an element: coef per row is
    (dlo/#lo, dhi/#hi, #lo + #hi in the row); partial ds, de per program."""
    js = tl.arange(0, BLOCK_J)
    ds = tl.zeros([BLOCK_J], tl.float32)
    de = tl.zeros([BLOCK_J], tl.float32)
    for row in range(tl.program_id(0), M, tl.num_programs(0)):
        if tl.load(coef_ptr + row * 3 + 2) > 0.0:
            to_lo = tl.load(coef_ptr + row * 3)
            to_hi = tl.load(coef_ptr + row * 3 + 1)
            for c0 in range(0, d_in, CHUNK):
                cols = c0 + tl.arange(0, CHUNK)
                x, ok, lo, hi, _, _, _, _ = _row_chunk(x_ptr, stats_ptr, row, cols, d_in)
                dx = tl.load(dx_ptr + row * d_in + cols, mask=ok, other=0.0).to(tl.float32)
                for j in tl.static_range(N_BASES):
                    r, r_u, r_v = features(x, s_ptr, e_ptr, j, ACT, FUNC)
                    dr = tl.where(ok & (r == lo), to_lo, 0.0) + tl.where(ok & (r == hi), to_hi, 0.0)
                    dx += dr * (r_u - r_v)
                    ds += tl.where(js == j, -tl.sum(dr * r_u, axis=0), 0.0)
                    de += tl.where(js == j, tl.sum(dr * r_v, axis=0), 0.0)
                tl.store(dx_ptr + row * d_in + cols, dx.to(dx_ptr.dtype.element_ty), mask=ok)
    j_ok = js < N_BASES
    tl.store(part_ptr + tl.program_id(0) * 2 * N_BASES + js, ds, mask=j_ok)
    tl.store(part_ptr + tl.program_id(0) * 2 * N_BASES + N_BASES + js, de, mask=j_ok)

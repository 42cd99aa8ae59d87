// GR-KAN's group rational, per element, as __host__ __device__ functions: the CUDA kernels
// (grkan_rational_cuda.cu) call them on the GPU, and tests/cuda/rational_math_host.cpp calls the very same code on
// the CPU so that a machine without a GPU still checks the kernels' arithmetic against the float64 reference.
//
// F(x) = P(x) / Q(x), P = a0 + a1 x + ... + a5 x^5, Q = 1 + |b0||x| + |b1||x|^2 + |b2||x|^3 + |b3||x|^4
// (kanbench/variants/grkan.py). Gradients, with s = sign(x) and sign(0) = zero_sign (1 as KAT's kernels, the
// default; 0 as autograd's abs):
//   dF/dx   = (P' - s Q' F) / Q,          Q' = |b0| + 2|b1||x| + 3|b2|x^2 + 4|b3||x|^3
//   dF/da_i = x^i / Q
//   dF/db_j = -sign(b_j) |x|^(j+1) P / Q^2   (the sign(b_j) factor is applied once per group, after the sums)
#pragma once

#if defined(__CUDACC__)
#define KB_HD __host__ __device__ __forceinline__
#else  // a plain C++ compiler: the host test of the arithmetic
#include <math.h>
#define KB_HD inline
#endif

namespace kanbench {

// One group's coefficients in fp32: a0..a5 and |b0|..|b3|.
struct RationalCoefficients {
  float a[6];
  float b[4];  // absolute values
};

KB_HD float rational_value(float x, const RationalCoefficients& c) {
  const float ax = fabsf(x);
  const float p = c.a[0] + x * (c.a[1] + x * (c.a[2] + x * (c.a[3] + x * (c.a[4] + x * c.a[5]))));
  const float q = 1.0f + ax * (c.b[0] + ax * (c.b[1] + ax * (c.b[2] + ax * c.b[3])));
  return p / q;
}

// The input gradient dy * dF/dx, and the ten coefficient-gradient terms of one element added to `terms`:
// terms[i] += dy x^i / Q (i < 6), terms[6 + j] += dy |x|^(j+1) P / Q^2 (before the -sign(b_j) factor).
KB_HD float rational_backward(float x, float dy, const RationalCoefficients& c, float terms[10], float zero_sign) {
  const float ax = fabsf(x);
  const float s = x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : zero_sign);
  const float p = c.a[0] + x * (c.a[1] + x * (c.a[2] + x * (c.a[3] + x * (c.a[4] + x * c.a[5]))));
  const float dp = c.a[1] + x * (2.0f * c.a[2] + x * (3.0f * c.a[3] + x * (4.0f * c.a[4] + x * 5.0f * c.a[5])));
  const float q = 1.0f + ax * (c.b[0] + ax * (c.b[1] + ax * (c.b[2] + ax * c.b[3])));
  const float dq = c.b[0] + ax * (2.0f * c.b[1] + ax * (3.0f * c.b[2] + ax * 4.0f * c.b[3]));
  const float inv_q = 1.0f / q;
  const float f = p * inv_q;
  float t = dy * inv_q;
  for (int i = 0; i < 6; ++i) {
    terms[i] += t;
    t *= x;
  }
  float u = dy * f * inv_q * ax;
  for (int j = 0; j < 4; ++j) {
    terms[6 + j] += u;
    u *= ax;
  }
  return dy * inv_q * (dp - s * dq * f);
}

}  // namespace kanbench

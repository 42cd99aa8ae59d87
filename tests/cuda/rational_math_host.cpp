// Host driver for the CUDA kernels' per-element arithmetic (kernels/grkan/rational_cuda.cuh), compiled by the test
// suite with the machine's C++ compiler: the same functions the kernels run, evaluated on the CPU.
// stdin: a0..a5 b0..b3 (one group), sign(0), then n, then n pairs "x dy".
// stdout, one line per pair: F(x), dy*dF/dx, then the ten terms dy*x^i/Q (i < 6) and dy*|x|^(j+1)*P/Q^2 (j < 4).
#include <cstdio>

#include "rational_cuda.cuh"

int main() {
  kanbench::RationalCoefficients c;
  for (float& a : c.a) {
    if (std::scanf("%f", &a) != 1) return 1;
  }
  for (float& b : c.b) {
    if (std::scanf("%f", &b) != 1) return 1;
    b = fabsf(b);
  }
  float zero_sign = 1.0f;
  if (std::scanf("%f", &zero_sign) != 1) return 1;
  int n = 0;
  if (std::scanf("%d", &n) != 1) return 1;
  for (int k = 0; k < n; ++k) {
    float x = 0.0f, dy = 0.0f;
    if (std::scanf("%f %f", &x, &dy) != 2) return 1;
    float terms[10] = {0.0f};
    const float y = kanbench::rational_value(x, c);
    const float dx = kanbench::rational_backward(x, dy, c, terms, zero_sign);
    std::printf("%.9g %.9g", y, dx);
    for (float t : terms) std::printf(" %.9g", t);
    std::printf("\n");
  }
  return 0;
}

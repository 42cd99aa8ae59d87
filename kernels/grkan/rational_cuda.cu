// GR-KAN's group-rational op as CUDA kernels (the `cuda` impl of `grkan`), forward and backward.
//
// Inputs fp32, fp16 or bf16 of shape (N, D), channel c in group c / (D / groups); arithmetic in fp32
// (rational_cuda.cuh), outputs in the input dtype. This file holds only CUDA code, no torch headers, so nvcc
// alone can compile it; rational_cuda.cpp binds it to torch.
//
// Forward: a grid-stride loop over the N*D elements, 16 bytes per load and store where the pointers allow it
// (memory-bound: the floor is one read of x and one write of y). The groups' coefficients sit in shared memory.
//
// Backward: one read of x and dy, one write of dx, and the coefficient gradients as deterministic two-stage sums
// (no atomics). A block is 32 channels x 8 row lanes; each thread owns one channel and a fixed, strided set of
// rows, keeps its ten sums in registers, and the block adds its 8 row lanes in a fixed order into one partial row
// (row program x channel x 10 terms). The binding then sums the partials in a fixed order: the same inputs give
// bit-identical gradients.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "rational_cuda.cuh"

namespace kanbench {
namespace {

constexpr int kForwardThreads = 256;
constexpr int kBackwardChannels = 32;
constexpr int kBackwardRowLanes = 8;
constexpr int kTerms = 10;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ RationalCoefficients load_coefficients(const float* num, const float* den, int group,
                                                                  int num_stride_group) {
  RationalCoefficients c;
  for (int i = 0; i < 6; ++i) c.a[i] = num[group * num_stride_group + i];  // stride 0: one shared numerator
  for (int j = 0; j < 4; ++j) c.b[j] = fabsf(den[group * 4 + j]);
  return c;
}

// VEC elements of T per 16-byte access (VEC = 1: plain scalar accesses, for unaligned or odd sizes).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <typename T, int VEC>
__global__ void rational_forward_kernel(const T* __restrict__ x, T* __restrict__ y, const float* __restrict__ num,
                                        const float* __restrict__ den, int64_t packs, int D, int group_width,
                                        int num_stride_group, int groups) {
  extern __shared__ unsigned char shared[];
  RationalCoefficients* coefficients = reinterpret_cast<RationalCoefficients*>(shared);
  for (int g = threadIdx.x; g < groups; g += blockDim.x) {
    coefficients[g] = load_coefficients(num, den, g, num_stride_group);
  }
  __syncthreads();
  const Pack<T, VEC>* xs = reinterpret_cast<const Pack<T, VEC>*>(x);
  Pack<T, VEC>* ys = reinterpret_cast<Pack<T, VEC>*>(y);
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < packs;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Pack<T, VEC> in = xs[p];
    Pack<T, VEC> out;
    int channel = static_cast<int>((p * VEC) % D);  // one 64-bit modulo per pack, 32-bit steps after it
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      out.v[e] = from_float<T>(rational_value(to_float(in.v[e]), coefficients[channel / group_width]));
      channel = channel + 1 == D ? 0 : channel + 1;
    }
    ys[p] = out;
  }
}

template <typename T>
__global__ void rational_backward_kernel(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dx,
                                         const float* __restrict__ num, const float* __restrict__ den,
                                         float* __restrict__ partial, int64_t N, int64_t D, int64_t group_width,
                                         int num_stride_group, float zero_sign) {
  __shared__ float lanes[kBackwardRowLanes][kBackwardChannels][kTerms];
  const int64_t channel = static_cast<int64_t>(blockIdx.x) * kBackwardChannels + threadIdx.x;
  const bool active = channel < D;
  float terms[kTerms] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  if (active) {
    const RationalCoefficients c =
        load_coefficients(num, den, static_cast<int>(channel / group_width), num_stride_group);
    for (int64_t row = static_cast<int64_t>(blockIdx.y) * kBackwardRowLanes + threadIdx.y; row < N;
         row += static_cast<int64_t>(gridDim.y) * kBackwardRowLanes) {
      const int64_t i = row * D + channel;  // 32 consecutive channels per row lane: coalesced
      dx[i] = from_float<T>(rational_backward(to_float(x[i]), to_float(dy[i]), c, terms, zero_sign));
    }
  }
#pragma unroll
  for (int k = 0; k < kTerms; ++k) lanes[threadIdx.y][threadIdx.x][k] = terms[k];
  __syncthreads();
  if (threadIdx.y == 0 && active) {
    float* out = partial + (static_cast<int64_t>(blockIdx.y) * D + channel) * kTerms;
#pragma unroll
    for (int k = 0; k < kTerms; ++k) {
      float sum = 0.0f;
      for (int lane = 0; lane < kBackwardRowLanes; ++lane) sum += lanes[lane][threadIdx.x][k];  // fixed order
      out[k] = sum;
    }
  }
}

template <typename T>
cudaError_t forward_typed(const void* x, void* y, const float* num, const float* den, int64_t N, int64_t D,
                          int64_t group_width, int num_stride_group, int groups, int sm_count, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const int64_t total = N * D;
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0;
  const size_t shared = static_cast<size_t>(groups) * sizeof(RationalCoefficients);
  auto blocks_for = [&](int64_t packs) {
    const int64_t needed = (packs + kForwardThreads - 1) / kForwardThreads;
    return static_cast<int>(needed < 8LL * sm_count ? (needed > 0 ? needed : 1) : 8LL * sm_count);
  };
  if (aligned && total % kVec == 0) {
    const int64_t packs = total / kVec;
    rational_forward_kernel<T, kVec><<<blocks_for(packs), kForwardThreads, shared, stream>>>(
        static_cast<const T*>(x), static_cast<T*>(y), num, den, packs, static_cast<int>(D),
        static_cast<int>(group_width), num_stride_group, groups);
  } else {
    rational_forward_kernel<T, 1><<<blocks_for(total), kForwardThreads, shared, stream>>>(
        static_cast<const T*>(x), static_cast<T*>(y), num, den, total, static_cast<int>(D),
        static_cast<int>(group_width), num_stride_group, groups);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward_typed(const void* x, const void* dy, void* dx, const float* num, const float* den,
                           float* partial, int64_t N, int64_t D, int64_t group_width, int num_stride_group,
                           int row_programs, float zero_sign, cudaStream_t stream) {
  const dim3 block(kBackwardChannels, kBackwardRowLanes);
  const dim3 grid(static_cast<unsigned>((D + kBackwardChannels - 1) / kBackwardChannels),
                  static_cast<unsigned>(row_programs));
  rational_backward_kernel<T><<<grid, block, 0, stream>>>(static_cast<const T*>(x), static_cast<const T*>(dy),
                                                          static_cast<T*>(dx), num, den, partial, N, D, group_width,
                                                          num_stride_group, zero_sign);
  return cudaGetLastError();
}

}  // namespace

// dtype: 0 float32, 1 float16, 2 bfloat16. Coefficients are fp32, contiguous: num (1 or groups, 6), den (groups, 4).
cudaError_t launch_rational_forward(int dtype, const void* x, void* y, const float* num, const float* den, int64_t N,
                                    int64_t D, int64_t group_width, int num_stride_group, int groups, int sm_count,
                                    cudaStream_t stream) {
  switch (dtype) {
    case 0: return forward_typed<float>(x, y, num, den, N, D, group_width, num_stride_group, groups, sm_count, stream);
    case 1: return forward_typed<__half>(x, y, num, den, N, D, group_width, num_stride_group, groups, sm_count, stream);
    case 2:
      return forward_typed<__nv_bfloat16>(x, y, num, den, N, D, group_width, num_stride_group, groups, sm_count,
                                          stream);
    default: return cudaErrorInvalidValue;
  }
}

// partial: (row_programs, D, 10) fp32, fully written by the kernel (every channel of every row program).
// zero_sign: sign(0) in d|x|/dx (1 as KAT's kernels, 0 as autograd's abs).
cudaError_t launch_rational_backward(int dtype, const void* x, const void* dy, void* dx, const float* num,
                                     const float* den, float* partial, int64_t N, int64_t D, int64_t group_width,
                                     int num_stride_group, int row_programs, float zero_sign, cudaStream_t stream) {
  switch (dtype) {
    case 0:
      return backward_typed<float>(x, dy, dx, num, den, partial, N, D, group_width, num_stride_group, row_programs,
                                   zero_sign, stream);
    case 1:
      return backward_typed<__half>(x, dy, dx, num, den, partial, N, D, group_width, num_stride_group, row_programs,
                                    zero_sign, stream);
    case 2:
      return backward_typed<__nv_bfloat16>(x, dy, dx, num, den, partial, N, D, group_width, num_stride_group,
                                           row_programs, zero_sign, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace kanbench

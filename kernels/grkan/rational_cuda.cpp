// torch binding of the CUDA group-rational kernels (rational_cuda.cu): checks, launch on the current stream,
// and the fixed-order second stage of the coefficient-gradient sums. Built by kernels/grkan_cuda.py with
// torch.utils.cpp_extension on first use.

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

#include <vector>

namespace kanbench {
cudaError_t launch_rational_forward(int dtype, const void* x, void* y, const float* num, const float* den, int64_t N,
                                    int64_t D, int64_t group_width, int num_stride_group, int groups, int sm_count,
                                    cudaStream_t stream);
cudaError_t launch_rational_backward(int dtype, const void* x, const void* dy, void* dx, const float* num,
                                     const float* den, float* partial, int64_t N, int64_t D, int64_t group_width,
                                     int num_stride_group, int row_programs, float zero_sign, cudaStream_t stream);
}  // namespace kanbench

namespace {

constexpr int kMaxGroups = 1024;  // the forward keeps every group's coefficients in 40 KB of shared memory
constexpr int kBackwardChannels = 32;  // the block shape of rational_cuda.cu's backward kernel
constexpr int kBackwardRowLanes = 8;
constexpr int kRowProgramsPerSM = 8;  // backward blocks of 256 threads per SM to fill; not yet tuned on a GPU

int dtype_code(const torch::Tensor& x) {
  switch (x.scalar_type()) {
    case torch::kFloat: return 0;
    case torch::kHalf: return 1;
    case torch::kBFloat16: return 2;
    default: TORCH_CHECK(false, "grkan cuda: inputs must be float32, float16 or bfloat16, got ", x.scalar_type());
  }
  return -1;
}

int check(const torch::Tensor& x, const torch::Tensor& num, const torch::Tensor& den) {
  TORCH_CHECK(x.is_cuda(), "grkan cuda: x must be on a CUDA device");
  TORCH_CHECK(den.dim() == 2 && den.size(1) == 4, "grkan cuda: the denominator must be (groups, 4)");
  const int64_t groups = den.size(0);
  TORCH_CHECK(groups >= 1 && groups <= kMaxGroups, "grkan cuda: groups must be 1..", kMaxGroups, ", got ", groups);
  TORCH_CHECK(num.dim() == 2 && num.size(1) == 6 && (num.size(0) == 1 || num.size(0) == groups),
              "grkan cuda: the numerator must be (1, 6) or (", groups, ", 6)");
  TORCH_CHECK(x.size(-1) % groups == 0, "grkan cuda: width ", x.size(-1), " is not divisible by groups=", groups);
  return static_cast<int>(groups);
}

int sm_count(const torch::Tensor& x) {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, x.get_device()));
  return count;
}

}  // namespace

torch::Tensor rational_forward(torch::Tensor x, torch::Tensor num, torch::Tensor den) {
  const int groups = check(x, num, den);
  const c10::cuda::CUDAGuard guard(x.device());
  const torch::Tensor xc = x.contiguous();
  const torch::Tensor a = num.detach().to(x.device(), torch::kFloat).contiguous();
  const torch::Tensor b = den.detach().to(x.device(), torch::kFloat).contiguous();
  torch::Tensor y = torch::empty_like(xc);
  const int64_t D = x.size(-1);
  const int64_t N = D ? xc.numel() / D : 0;
  if (N == 0) return y;
  C10_CUDA_CHECK(kanbench::launch_rational_forward(dtype_code(x), xc.data_ptr(), y.data_ptr(), a.data_ptr<float>(),
                                                   b.data_ptr<float>(), N, D, D / groups, a.size(0) > 1 ? 6 : 0,
                                                   groups, sm_count(x), c10::cuda::getCurrentCUDAStream()));
  return y;
}

// sign_at_zero: sign(0) in the gradients of |x| and |b| (1 as KAT's kernels, 0 as autograd's abs).
std::vector<torch::Tensor> rational_backward(torch::Tensor dy, torch::Tensor x, torch::Tensor num, torch::Tensor den,
                                             double sign_at_zero) {
  const int groups = check(x, num, den);
  TORCH_CHECK(dy.sizes() == x.sizes() && dy.scalar_type() == x.scalar_type(),
              "grkan cuda: dy must match x in shape and dtype");
  const c10::cuda::CUDAGuard guard(x.device());
  const torch::Tensor xc = x.contiguous();
  const torch::Tensor dyc = dy.contiguous();
  const torch::Tensor a = num.detach().to(x.device(), torch::kFloat).contiguous();
  const torch::Tensor b = den.detach().to(x.device(), torch::kFloat).contiguous();
  torch::Tensor dx = torch::empty_like(xc);
  const int64_t D = x.size(-1);
  const int64_t N = D ? xc.numel() / D : 0;
  const int64_t channel_blocks = (D + kBackwardChannels - 1) / kBackwardChannels;
  const int64_t wanted = (kRowProgramsPerSM * sm_count(x) + channel_blocks - 1) / channel_blocks;
  const int row_programs = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((N + kBackwardRowLanes - 1) / kBackwardRowLanes, wanted)));
  torch::Tensor partial = torch::empty({row_programs, D, 10}, x.options().dtype(torch::kFloat));
  if (N > 0) {
    C10_CUDA_CHECK(kanbench::launch_rational_backward(
        dtype_code(x), xc.data_ptr(), dyc.data_ptr(), dx.data_ptr(), a.data_ptr<float>(), b.data_ptr<float>(),
        partial.data_ptr<float>(), N, D, D / groups, a.size(0) > 1 ? 6 : 0, row_programs,
        static_cast<float>(sign_at_zero), c10::cuda::getCurrentCUDAStream()));
  } else {
    partial.zero_();
  }
  // second stage, fixed order: over row programs, then over the channels of each group
  const torch::Tensor sums = partial.sum(0).view({groups, D / groups, 10}).sum(1);
  torch::Tensor da = sums.slice(1, 0, 6);
  if (num.size(0) == 1) da = da.sum(0, true);
  const torch::Tensor sign_b = torch::where(b == 0, torch::full_like(b, sign_at_zero), torch::sign(b));
  const torch::Tensor db = -sign_b * sums.slice(1, 6, 10);
  return {dx, da.to(num.scalar_type()), db.to(den.scalar_type())};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("rational_forward", &rational_forward, "GR-KAN group rational F(x), CUDA");
  m.def("rational_backward", &rational_backward, "GR-KAN group rational backward (dx, da, db), CUDA");
}

// The extension's C entry points, called from Python through ctypes (no
// Python headers: the same .so serves every Python version).
#include <cuda_runtime_api.h>

#include <cstdio>
#include <exception>
#include <string>

#include "hbmalloc/registry.hpp"
#include "torch_allocator.h"

namespace {

int refuse(char* err, size_t cap, const std::string& why) {
  if (err != nullptr && cap > 0) std::snprintf(err, cap, "%s", why.c_str());
  return -1;
}

}  // namespace

extern "C" {

// Makes hbmalloc PyTorch's CUDA allocator, with the checks of
// torch.cuda.memory.change_current_allocator. Returns 0, or -1 with the
// reason in err (PyTorch's allocator already initialized, no CUDA device).
__attribute__((visibility("default"))) int hbmt_install(char* err, size_t cap) {
  namespace CCA = c10::cuda::CUDACachingAllocator;
  try {
    auto& ours = hbmalloc::torch_ext::TorchAllocator::instance();
    CCA::CUDAAllocator* current = CCA::allocator.load();
    if (current == &ours) return 0;
    int count = 0;
    if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || count == 0) {
      (void)cudaGetLastError();
      return refuse(err, cap,
                    std::string("no CUDA device is visible: ") +
                        (e != cudaSuccess ? cudaGetErrorString(e) : "the CUDA runtime reports 0 devices"));
    }
    if (current != nullptr && current->initialized())
      return refuse(err, cap,
                    "PyTorch's CUDA allocator (" + current->name() +
                        ") is already initialized; call hbmalloc.install() before the first CUDA allocation "
                        "(or run the script with `python -m hbmalloc.run`)");
    // What torch.cuda.memory.change_current_allocator does, plus c10's
    // allocator table, which PyTorch's own static initializer also sets.
    CCA::allocator.store(&ours);
    c10::SetAllocator(c10::DeviceType::CUDA, &ours);
    return 0;
  } catch (const std::exception& e) {
    return refuse(err, cap, e.what());
  }
}

// Names the allocation stacks the process's recorder holds waiting (see
// hbmalloc/stacks.hpp); the package calls it at interpreter exit, before
// Python frames can no longer be named. Returns how many blocks got one.
__attribute__((visibility("default"))) size_t hbmt_name_stacks(void) {
  try {
    return hbmalloc::name_stacks();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hbmalloc: %s\n", e.what());
    return 0;
  }
}

// 1 when hbmalloc is PyTorch's CUDA allocator now.
__attribute__((visibility("default"))) int hbmt_is_current(void) {
  return c10::cuda::CUDACachingAllocator::allocator.load() == &hbmalloc::torch_ext::TorchAllocator::instance();
}

}  // extern "C"

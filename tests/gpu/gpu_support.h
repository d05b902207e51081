// Helpers shared by the GPU tests: whether a device is there, and the seed of
// a random test (HBMALLOC_TEST_SEED replays one).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdlib>
#include <random>

namespace hbmalloc::gpu_test {

// 0 when the runtime reports no device, no driver, or any other failure.
inline int visible_devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

inline uint64_t test_seed() {
  if (const char* s = std::getenv("HBMALLOC_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

}  // namespace hbmalloc::gpu_test

// The cuda backend's virtual memory management on a real device: granules
// keep their bytes when remapped elsewhere, misuse is refused. Every test
// skips when no CUDA device is visible or the device has no VMM.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "backend/cuda_backend.h"
#include "hbmalloc/error.hpp"

namespace hbmalloc {
namespace {

int visible_devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

char* At(void* base, uint64_t offset) { return static_cast<char*>(base) + offset; }

// Whether every byte of [ptr, +bytes) on the device is `value`.
::testing::AssertionResult Holds(const void* ptr, uint64_t bytes, uint8_t value) {
  std::vector<uint8_t> host(bytes);
  if (cudaError_t err = cudaMemcpy(host.data(), ptr, bytes, cudaMemcpyDeviceToHost); err != cudaSuccess)
    return ::testing::AssertionFailure() << "cudaMemcpy: " << cudaGetErrorString(err);
  for (uint64_t i = 0; i < bytes; ++i)
    if (host[i] != value)
      return ::testing::AssertionFailure() << "byte " << i << " is " << int(host[i]) << ", expected " << int(value);
  return ::testing::AssertionSuccess();
}

class CudaVmmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (visible_devices() == 0) GTEST_SKIP() << "no CUDA device visible";
    backend_ = std::make_unique<CudaBackend>(0);
    if (backend_->vmm_granularity() == 0) GTEST_SKIP() << "no VMM: " << backend_->vmm_unavailable_reason();
  }
  std::unique_ptr<CudaBackend> backend_;
};

TEST_F(CudaVmmTest, GranularityIsAPowerOfTwo) {
  uint64_t g = backend_->vmm_granularity();
  EXPECT_EQ(g & (g - 1), 0u);
  std::printf("VMM granularity %llu bytes\n", (unsigned long long)g);
}

TEST_F(CudaVmmTest, RemappedGranulesKeepTheirBytes) {
  CudaBackend& b = *backend_;
  const uint64_t g = b.vmm_granularity();
  void* range = b.reserve_range(8 * g);
  ASSERT_NE(range, nullptr);
  GranuleId x = b.create_granule(g), y = b.create_granule(g);
  ASSERT_NE(x, 0u);
  ASSERT_NE(y, 0u);
  b.map(At(range, 0), x);
  b.map(At(range, g), y);
  b.set_access(range, 2 * g);
  ASSERT_EQ(cudaMemset(At(range, 0), 0x11, g), cudaSuccess);
  ASSERT_EQ(cudaMemset(At(range, g), 0x22, g), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  b.unmap(range, 2 * g);
  b.map(At(range, 5 * g), x);
  b.map(At(range, 4 * g), y);
  b.set_access(At(range, 4 * g), 2 * g);
  EXPECT_TRUE(Holds(At(range, 5 * g), g, 0x11));
  EXPECT_TRUE(Holds(At(range, 4 * g), g, 0x22));
  b.unmap(At(range, 4 * g), 2 * g);
  b.release_granule(x);
  b.release_granule(y);
  b.release_range(range, 8 * g);
}

TEST_F(CudaVmmTest, MisuseIsRefusedAndTheBackendStaysUsable) {
  CudaBackend& b = *backend_;
  const uint64_t g = b.vmm_granularity();
  void* range = b.reserve_range(2 * g);
  ASSERT_NE(range, nullptr);
  GranuleId x = b.create_granule(g);
  EXPECT_THROW(b.map(At(range, g / 2), x), Error);
  EXPECT_THROW(b.unmap(range, g), Error);
  b.map(range, x);
  EXPECT_THROW(b.map(At(range, g), x), Error);
  EXPECT_THROW(b.release_granule(x), Error);
  b.set_access(range, g);
  ASSERT_EQ(cudaMemset(range, 0x33, g), cudaSuccess);
  EXPECT_TRUE(Holds(range, g, 0x33));
  b.unmap(range, g);
  b.release_granule(x);
  b.release_range(range, 2 * g);
}

TEST_F(CudaVmmTest, CreatingPastTheDeviceIsZeroNotAnError) {
  CudaBackend& b = *backend_;
  const uint64_t g = b.vmm_granularity();
  const uint64_t too_much = (b.capacity() / g + 1) * g;
  EXPECT_EQ(b.create_granule(too_much), 0u);
  GranuleId x = b.create_granule(g);  // and the device is still usable
  EXPECT_NE(x, 0u);
  b.release_granule(x);
}

}  // namespace
}  // namespace hbmalloc

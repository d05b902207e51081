// The remapping integrity proof of tests/unit/vmm_integrity_test.cc on a real
// device: the hbm policy on the cuda backend's VMM, a 1 GiB budget and
// remap:always, with 2 MiB slabs on granules (empty ones are remapped too), so
// that large requests are served by unmapping cached free
// granules and mapping them where they land. Every live block holds a pattern
// derived from its id (copied in, verified before free and at random checks
// of all live blocks; blocks sharing physical memory would overwrite each
// other's). Some blocks are freed while work on their stream still writes
// them: remapping before that work is done faults or corrupts a later block.
// Skips without a CUDA device or without VMM.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
#include "hbmalloc/allocator.hpp"
#include "gpu_support.h"
#include "support/block_pattern.h"
#include "hbmalloc/error.hpp"

namespace hbmalloc {
namespace {

using gpu_test::test_seed;
using gpu_test::visible_devices;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

// The block's bytes (support/block_pattern.h), cut to size.
std::vector<uint64_t> pattern(uint64_t id, uint64_t size) {
  std::vector<uint64_t> words((size + 7) / 8);
  for (uint64_t i = 0; i < words.size(); ++i) words[i] = testing::pattern_word(id, i);
  return words;
}

struct Live {
  void* ptr;
  uint64_t size, id;
  int stream;
};

std::string verify(const Live& l) {
  std::vector<uint64_t> want = pattern(l.id, l.size), got(want.size());
  if (cudaError_t err = cudaMemcpy(got.data(), l.ptr, l.size, cudaMemcpyDeviceToHost); err != cudaSuccess)
    return std::string("cudaMemcpy: ") + cudaGetErrorString(err);
  if (std::memcmp(got.data(), want.data(), l.size) == 0) return "";
  return "block " + std::to_string(l.id) + " (" + std::to_string(l.size) + " bytes) corrupt";
}

TEST(CudaVmmIntegrity, HundredThousandRandomOperationsWithHeavyRemapping) {
  if (visible_devices() == 0) GTEST_SKIP() << "no CUDA device visible";
  {
    CudaBackend probe(0);
    if (probe.vmm_granularity() == 0) GTEST_SKIP() << "no VMM: " << probe.vmm_unavailable_reason();
  }
  const uint64_t seed = test_seed();
  std::printf("seed %llu (HBMALLOC_TEST_SEED=%llu replays it)\n", (unsigned long long)seed, (unsigned long long)seed);
  SCOPED_TRACE("HBMALLOC_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0), log_size(9.0, 23.0);  // 512 B .. 8 MiB

  // On the CUDA double a host memset stands in for the GPU's: fewer operations
  // and a smaller "slow work" buffer keep the run in seconds there.
  auto knob = [](const char* name, uint64_t fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
  };
  const uint64_t kOps = knob("HBMALLOC_INTEGRITY_OPS", 100'000);
  const uint64_t kScratch = knob("HBMALLOC_INTEGRITY_SCRATCH_MIB", 256) * kMiB;
  constexpr int kStreams = 3;
  cudaStream_t streams[kStreams];
  for (cudaStream_t& s : streams) ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  // Slow work queued ahead of a write into a freed block, so the write is
  // still pending when the allocator might want the block's granules.
  void* scratch = nullptr;
  ASSERT_EQ(cudaMalloc(&scratch, kScratch), cudaSuccess);

  Config config = Config::parse("backend:cuda,remap:always,remap_budget:off,small_size:1MiB,slab_size:2MiB");
  uint64_t ops = 0, checks = 0, verified = 0, written_after_free = 0, ooms = 0;
  {
    Allocator a(config, 0);
    CudaBackend probe(0);
    a.set_memory_fraction(double(kGiB) / double(probe.capacity()));
    std::vector<Live> live;
    uint64_t next_id = 1;
    for (; ops < kOps; ++ops) {
      const double r = coin(rng);
      if (r < 0.5) {
        const uint64_t size = uint64_t(std::exp2(log_size(rng)));
        const int s = int(rng() % kStreams);
        void* p = nullptr;
        try {
          p = a.malloc(size, reinterpret_cast<StreamId>(streams[s]));
        } catch (const Error& e) {
          ASSERT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
          ++ooms;
          continue;
        }
        Live l{p, size, next_id++, s};
        std::vector<uint64_t> words = pattern(l.id, size);
        ASSERT_EQ(cudaMemcpy(p, words.data(), size, cudaMemcpyHostToDevice), cudaSuccess);
        live.push_back(l);
      } else if (r < 0.98 && !live.empty()) {
        const size_t i = rng() % live.size();
        const Live l = live[i];
        live[i] = live.back();
        live.pop_back();
        const std::string bad = verify(l);
        ASSERT_EQ(bad, "") << "op " << ops << ", before free";
        ++verified;
        if (coin(rng) < 0.1) {  // its stream still writes it after the free
          ASSERT_EQ(cudaMemsetAsync(scratch, int(ops & 0xFF), kScratch, streams[l.stream]), cudaSuccess);
          ASSERT_EQ(cudaMemsetAsync(l.ptr, 0xEE, l.size, streams[l.stream]), cudaSuccess);
          ++written_after_free;
        }
        a.free(l.ptr, int64_t(l.size));
      } else if (r < 0.981) {
        a.empty_cache();
      } else if (r < 0.982) {
        ++checks;
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << "op " << ops;
        for (const Live& l : live) ASSERT_EQ(verify(l), "") << "op " << ops << ", random check";
        ASSERT_NO_THROW(a.check_invariants());
      }
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    for (const Live& l : live) {
      ASSERT_EQ(verify(l), "");
      a.free(l.ptr, int64_t(l.size));
    }
    a.empty_cache();
    EXPECT_EQ(a.stats().reserved_bytes.all.current, 0);
    const Stats s = a.stats();
    std::printf("%llu ops (%llu OOMs), %llu frees verified, %llu random checks, %llu blocks written after free; "
                "VMM: %lld created, %lld remapped, %lld released, %lld syncs, %.3f s modeled\n",
                (unsigned long long)ops, (unsigned long long)ooms, (unsigned long long)verified,
                (unsigned long long)checks, (unsigned long long)written_after_free, (long long)s.vmm.create,
                (long long)(s.vmm.map - s.vmm.create), (long long)s.vmm.release, (long long)s.num_sync_all_streams,
                s.vmm.modeled_seconds());
    EXPECT_GT(s.vmm.map - s.vmm.create, int64_t(kOps / 10)) << "the run should remap heavily";
  }
  (void)cudaFree(scratch);
  for (cudaStream_t s : streams) (void)cudaStreamDestroy(s);
}

}  // namespace
}  // namespace hbmalloc

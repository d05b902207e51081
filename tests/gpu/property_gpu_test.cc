// The property test of tests/unit/property_test.cc on the cuda backend, under
// each policy: long random sequences of malloc, free (some waiting on another
// stream's work), record_stream and empty_cache, checked against an
// independent shadow (no two live blocks overlap) and by the invariant
// checker; on the CUDA double also against what the device itself holds
// (reserved == the double's bytes in use; nothing left once the allocator
// goes); and a private pool restored to a checkpoint keeps the bytes of its
// live blocks. Skips without a CUDA device.
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gpu_support.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "support/invariants.h"

namespace hbmalloc {
namespace {

using gpu_test::test_seed;
using gpu_test::visible_devices;

// The double's controls, absent on a real GPU.
struct Double {
  using Fail = void (*)(const char*, uint64_t, uint64_t, int);
  using Count = uint64_t (*)(void);
  using Used = uint64_t (*)(int);
  Fail fail = reinterpret_cast<Fail>(dlsym(RTLD_DEFAULT, "hbm_double_fail"));
  Used used = reinterpret_cast<Used>(dlsym(RTLD_DEFAULT, "hbm_double_used"));
  Count handles = reinterpret_cast<Count>(dlsym(RTLD_DEFAULT, "hbm_double_handles"));
  Count mappings = reinterpret_cast<Count>(dlsym(RTLD_DEFAULT, "hbm_double_mappings"));
  bool present() const { return fail && used && handles && mappings; }
};

struct Live {
  void* ptr;
  uint64_t size;
};

class GpuProperty : public ::testing::TestWithParam<const char*> {};

TEST_P(GpuProperty, RandomOperationsKeepEveryInvariant) {
  if (visible_devices() == 0) GTEST_SKIP() << "no CUDA device visible";
  const Double dbl;
  const uint64_t seed = test_seed();
  SCOPED_TRACE("HBMALLOC_TEST_SEED=" + std::to_string(seed) + " policy conf \"" + GetParam() + "\"");
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0), log_size(0.0, 28.0);  // 1 B .. 256 MiB
  constexpr int kStreams = 3;
  cudaStream_t streams[kStreams];
  for (cudaStream_t& s : streams) ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  const auto id = [&](int s) { return reinterpret_cast<StreamId>(streams[s]); };

  uint64_t ops = 0, ooms = 0, waited = 0;
  {
    Allocator a(Config::parse(std::string("backend:cuda,") + GetParam()), 0);
    size_t free_bytes = 0, total = 0;
    ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
    // A 2 GiB budget: out of memory happens, and is survived.
    a.set_memory_fraction(std::min(1.0, double(2ull << 30) / double(total)));
    std::vector<Live> live;
    testing::LiveRanges shadow;
    for (; ops < 20'000; ++ops) {
      const double r = coin(rng);
      if (r < (live.size() < 200 ? 0.6 : 0.4)) {
        const uint64_t size = std::max<uint64_t>(1, uint64_t(std::exp2(log_size(rng))));
        void* p = nullptr;
        try {
          p = a.malloc(size, id(int(rng() % kStreams)));
        } catch (const Error& e) {
          ASSERT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
          ++ooms;
          continue;
        }
        ASSERT_EQ(shadow.add(p, size), "") << "op " << ops << ": " << size << " bytes at " << p;
        live.push_back({p, size});
      } else if (r < 0.97 && !live.empty()) {
        const size_t i = rng() % live.size();
        const Live l = live[i];
        live[i] = live.back();
        live.pop_back();
        if (coin(rng) < 0.05) {  // used on another stream, whose work is not done yet
          a.record_stream(l.ptr, id(int(rng() % kStreams)));
          if (dbl.present()) dbl.fail("cudaEventQuery", 1, 1 + rng() % 3, int(cudaErrorNotReady));
          ++waited;
        }
        a.free(l.ptr, coin(rng) < 0.5 ? int64_t(l.size) : -1);
        shadow.remove(l.ptr);
      } else if (r < 0.975) {
        a.empty_cache();
      }
      if (ops % 997 == 0) {
        ASSERT_TRUE(testing::InvariantsHold(a)) << "op " << ops;
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        if (dbl.present())
          ASSERT_EQ(uint64_t(a.stats().reserved_bytes.all.current), dbl.used(0)) << "op " << ops;
      }
    }
    if (dbl.present()) dbl.fail("cudaEventQuery", 1, 0, 0);
    for (const Live& l : live) a.free(l.ptr);
    a.empty_cache();
    ASSERT_TRUE(testing::InvariantsHold(a));
    EXPECT_EQ(a.stats().reserved_bytes.all.current, 0);
    std::printf("%llu ops, %llu OOMs, %llu frees waiting on another stream\n", (unsigned long long)ops,
                (unsigned long long)ooms, (unsigned long long)waited);
  }
  if (dbl.present()) {
    EXPECT_EQ(dbl.used(0), 0u);
    EXPECT_EQ(dbl.handles(), 0u);
    EXPECT_EQ(dbl.mappings(), 0u);
  }
  for (cudaStream_t s : streams) (void)cudaStreamDestroy(s);
}

// CUDA graph trees: a private pool restored to a checkpoint keeps the bytes
// of the checkpoint's live blocks (a replayed graph's tensors live there), and
// the device holds what the allocator says.
TEST_P(GpuProperty, PoolRestoreKeepsTheBytesOfTheCheckpointsBlocks) {
  if (visible_devices() == 0) GTEST_SKIP() << "no CUDA device visible";
  const Double dbl;
  std::mt19937_64 rng(test_seed());
  cudaStream_t capture = nullptr;
  ASSERT_EQ(cudaStreamCreate(&capture), cudaSuccess);
  const PoolId graph{3, 9};
  const StreamId on = reinterpret_cast<StreamId>(capture);
  const auto fill = [](void* p, uint64_t size, int round) {
    std::vector<uint8_t> host(size);
    for (uint64_t i = 0; i < size; ++i) host[i] = uint8_t(i * 7 + round);
    return cudaMemcpy(p, host.data(), size, cudaMemcpyHostToDevice) == cudaSuccess;
  };
  const auto holds = [](const void* p, uint64_t size, int round) {
    std::vector<uint8_t> host(size);
    if (cudaMemcpy(host.data(), p, size, cudaMemcpyDeviceToHost) != cudaSuccess) return false;
    for (uint64_t i = 0; i < size; ++i)
      if (host[i] != uint8_t(i * 7 + round)) return false;
    return true;
  };
  {
    Allocator a(Config::parse(std::string("backend:cuda,") + GetParam()), 0);
    a.create_pool(graph);
    std::vector<std::pair<void*, uint64_t>> live;
    a.begin_allocate_to_pool(graph, [on](StreamId s) { return s == on; });
    for (int i = 0; i < 30; ++i) {
      const uint64_t size = 1 + rng() % (i % 3 == 0 ? 9 << 20 : 200 << 10);
      live.emplace_back(a.malloc(size, on), size);
      ASSERT_TRUE(fill(live.back().first, size, i));
    }
    a.end_allocate_to_pool(graph);
    const PoolCheckpoint checkpoint = a.checkpoint_pool(graph);
    // The next branch: half the tensors die, new ones are recorded.
    for (size_t i = 0; i < live.size(); i += 2) a.free(live[i].first);
    a.begin_allocate_to_pool(graph, [on](StreamId s) { return s == on; });
    for (int i = 0; i < 20; ++i) a.malloc(1 + rng() % (4 << 20), on);
    a.end_allocate_to_pool(graph);
    // The dead tensors' memory was reused: only the survivors keep their bytes.
    const PoolRestore r = a.restore_pool(checkpoint);
    ASSERT_EQ(r.allocated.size(), live.size());
    ASSERT_TRUE(testing::InvariantsHold(a));
    for (size_t i = 1; i < live.size(); i += 2) EXPECT_TRUE(holds(live[i].first, live[i].second, int(i))) << i;
    if (dbl.present()) ASSERT_EQ(uint64_t(a.stats().reserved_bytes.all.current), dbl.used(0));
    for (const auto& [p, size] : live) a.free(p);
    while (a.pool_use_count(graph) > 0) a.release_pool(graph);  // create and each recording added a use
    a.empty_cache();
    EXPECT_EQ(a.stats().reserved_bytes.all.current, 0);
  }
  if (dbl.present()) {
    EXPECT_EQ(dbl.handles(), 0u);
    EXPECT_EQ(dbl.mappings(), 0u);
  }
  (void)cudaStreamDestroy(capture);
}

INSTANTIATE_TEST_SUITE_P(Policies, GpuProperty,
                         ::testing::Values("", "vmm:off", "remap:always,remap_budget:off", "policy:cca",
                                           "policy:cca,expandable_segments:True"),
                         [](const auto& info) {
                           std::string name = info.param;
                           if (name.empty()) return std::string("hbm");
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

}  // namespace
}  // namespace hbmalloc

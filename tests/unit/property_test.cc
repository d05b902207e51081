// Long random operation sequences on the sim backend, checked against an
// independent shadow (no two live blocks overlap, requested bytes add up) and
// by the invariant checker at regular points.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::LiveRanges;
using testing::SimAllocator;

struct Live {
  void* ptr;
  uint64_t size;
  StreamId stream;
};

struct Run {
  uint64_t ops, seed, capacity;
  size_t target_live;
  int check_every;
  const char* conf = "";  // the default: page-mapped large blocks (VMM)
};

void RunRandomOps(const Run& run) {
  SCOPED_TRACE(run.conf);
  SimAllocator a(run.capacity, run.conf);
  std::mt19937_64 rng(run.seed);
  std::uniform_real_distribution<double> log_size(0.0, 32.0);  // 1 B .. 4 GiB, log-uniform
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  constexpr int kStreams = 4;
  std::vector<Live> live;
  LiveRanges shadow;
  uint64_t requested = 0, ooms = 0, frees_pending_stream = 0;
  bool held[kStreams + 3] = {};

  for (uint64_t op = 0; op < run.ops; ++op) {
    double r = coin(rng);
    double p_alloc = live.size() < run.target_live ? 0.6 : 0.4;
    if (r < p_alloc) {
      uint64_t size = uint64_t(std::exp2(log_size(rng)));
      if (size == 0) size = 1;
      StreamId stream = rng() % kStreams;
      void* p = nullptr;
      try {
        p = a->malloc(size, stream);
      } catch (const Error& e) {
        ASSERT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
        ++ooms;
        continue;
      }
      std::string overlap = shadow.add(p, size);
      ASSERT_EQ(overlap, "") << "op " << op << ": " << size << " bytes at " << p;
      live.push_back({p, size, stream});
      requested += size;
    } else if (!live.empty() && r < 0.97) {
      size_t i = rng() % live.size();  // frees in random order
      Live l = live[i];
      live[i] = live.back();
      live.pop_back();
      if (coin(rng) < 0.05) {  // used on another stream too
        StreamId other = kStreams + rng() % 3;
        a->record_stream(l.ptr, other);
        if (coin(rng) < 0.5) {
          a.sim->hold_stream(other);
          held[other] = true;
        }
        ++frees_pending_stream;
      }
      a->free(l.ptr, coin(rng) < 0.5 ? int64_t(l.size) : -1);
      shadow.remove(l.ptr);
      requested -= l.size;
    } else if (r < 0.985) {
      for (int s = kStreams; s < kStreams + 3; ++s)
        if (held[s] && coin(rng) < 0.5) {
          a.sim->complete_stream(s);
          held[s] = false;
        }
    } else if (r < 0.986) {
      a->empty_cache();
    }
    if (op % run.check_every == 0) {
      ASSERT_TRUE(InvariantsHold(*a.alloc)) << "after op " << op;
      Stats s = a->stats();
      ASSERT_EQ(s.allocation.all.current, int64_t(live.size()));
      ASSERT_GE(s.requested_bytes.all.current, int64_t(requested));  // plus pending frees
      if (run.capacity) {
        ASSERT_LE(uint64_t(s.reserved_bytes.all.current), run.capacity);
      }
      // Reserved is exactly what the device holds, and every live byte is
      // mapped and accessible there (segments always are).
      ASSERT_EQ(uint64_t(s.reserved_bytes.all.current), a.sim->used_bytes());
      if (s.vmm.create > 0)
        for (const Live& l : live)
          ASSERT_TRUE(a.sim->accessible(reinterpret_cast<uintptr_t>(l.ptr), l.size)) << "op " << op;
    }
  }
  for (const Live& l : live) a->free(l.ptr, int64_t(l.size));
  a->empty_cache();
  Stats s = a->stats();
  EXPECT_EQ(s.allocation.all.current, 0);
  EXPECT_EQ(s.active.all.current, 0);
  EXPECT_EQ(s.requested_bytes.all.current, 0);
  EXPECT_EQ(s.reserved_bytes.all.current, 0);  // no leak
  EXPECT_EQ(a.sim->live_segments(), 0u);
  EXPECT_EQ(a.sim->used_bytes(), 0u);
  EXPECT_EQ(a.sim->mappings(), 0u);
  EXPECT_EQ(s.num_ooms, int64_t(ooms));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  std::printf("%s: ops %llu, OOMs %llu, frees with other-stream uses %llu, device allocs %lld, granules created %lld, "
              "remapped %lld\n",
              run.conf, (unsigned long long)run.ops, (unsigned long long)ooms, (unsigned long long)frees_pending_stream,
              (long long)s.num_device_alloc, (long long)s.vmm.create, (long long)s.vmm.unmap);
}

// The acceptance run: a million operations, sizes 1 B to 4 GiB, four streams,
// a device small enough that out-of-memory happens and must stay clean.
TEST(Property, MillionRandomOperations) {
  RunRandomOps({1'000'000, 20261121, 96ull << 30, 400, 5000});
}

// Many small seeds with the checker after every operation.
TEST(Property, ShortRunsCheckedEveryOperation) {
  for (uint64_t seed = 1; seed <= 20; ++seed) RunRandomOps({3000, seed, 8ull << 30, 30, 1});
}

// Remapping at every chance, and plain segments, over long runs.
TEST(Property, RemapAlwaysAndPlainSegments) {
  RunRandomOps({200'000, 11, 64ull << 30, 300, 2000, "remap:always,remap_budget:off"});
  RunRandomOps({200'000, 12, 64ull << 30, 300, 2000, "vmm:off"});
  for (uint64_t seed = 30; seed <= 40; ++seed) RunRandomOps({3000, seed, 8ull << 30, 30, 1, "remap:always,remap_budget:off"});
}

}  // namespace
}  // namespace hbmalloc

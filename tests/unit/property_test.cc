// Long random operation sequences on the sim backend, checked against an
// independent shadow (no two live blocks overlap, requested bytes add up), by
// the invariant checker and against the layout (what snapshots show agrees
// with the statistics, pool by pool) at regular points.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::LayoutAgreesWithStats;
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
      const Stats before = a->stats();
      a->empty_cache();
      // Giving the cache back leaves exactly the inactive split
      // ("non-releasable") memory, pool by pool.
      const Stats s = a->stats();
      for (Pool pool : {Pool::kSmall, Pool::kLarge})
        ASSERT_EQ(s.reserved_bytes.of(pool).current - s.active_bytes.of(pool).current,
                  s.inactive_split_bytes.of(pool).current)
            << "op " << op << (pool == Pool::kSmall ? ", small pool" : ", large pool");
      // And the large pool's said so beforehand, where no free waited on
      // other streams' work (empty_cache completes those first). (The small
      // pool's leaves out empty slabs, whose bytes go back to the mid pool.)
      if (before.active_bytes.large_pool.current == before.allocated_bytes.large_pool.current)
        ASSERT_EQ(before.inactive_split_bytes.large_pool.current, s.inactive_split_bytes.large_pool.current)
            << "op " << op;
    }
    if (op % run.check_every == 0) {
      ASSERT_TRUE(InvariantsHold(*a.alloc)) << "after op " << op;
      ASSERT_TRUE(LayoutAgreesWithStats(*a.alloc)) << "after op " << op;
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

// PyTorch's rules on plain segments, checked every operation. (Under
// expandable segments PyTorch counts no segment, only the bytes mapped, so
// its layout and segment count differ by design.)
TEST(Property, PyTorchsRulesOnPlainSegments) {
  for (uint64_t seed = 30; seed <= 40; ++seed) RunRandomOps({3000, seed, 8ull << 30, 30, 1, "policy:cca"});
}

// A random step repeated, as a training loop repeats its step: the same
// requests in the same order each time, on an unlimited device where only
// the pressure rule remaps. Every step leaves the allocator consistent, and
// at the defaults remapping that recurs is bought out: the last steps move
// nothing, where with remap_overhead:off some seeds move granules every step.
struct StepOp {
  bool alloc;
  uint64_t size;  // alloc: bytes
  size_t slot;    // alloc: where the pointer goes; free: which to free
};

std::vector<StepOp> RandomStep(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> log_size(16.0, 28.0);  // 64 KiB .. 256 MiB
  std::vector<StepOp> ops;
  std::vector<size_t> live;
  size_t slots = 0;
  for (int i = 0; i < 80; ++i) {
    if (live.empty() || (live.size() < 24 && rng() % 3 != 0)) {
      ops.push_back({true, uint64_t(std::exp2(log_size(rng))), slots});
      live.push_back(slots++);
    } else {
      const size_t k = rng() % live.size();
      ops.push_back({false, 0, live[k]});
      live[k] = live.back();
      live.pop_back();
    }
  }
  for (size_t slot : live) ops.push_back({false, 0, slot});  // the step ends with nothing live
  return ops;
}

// `steps` repeats of seed's step under `conf`: what each step remapped, and
// at the end what was bought, the efficiency and the modeled device time.
struct Repeated {
  std::vector<int64_t> remapped;
  int64_t bought = 0;
  double efficiency = 0, device_seconds = 0;
};
Repeated RepeatStep(uint64_t seed, const char* conf, int steps) {
  SimAllocator a(0, conf);
  a.sim->set_trace_time(1'000'000);
  const std::vector<StepOp> step = RandomStep(seed);
  std::vector<void*> ptrs(step.size());
  Repeated r;
  for (int k = 0; k < steps; ++k) {
    const int64_t before = a->stats().vmm.remapped;
    for (const StepOp& op : step) {
      if (op.alloc) {
        ptrs[op.slot] = a->malloc(op.size);
        EXPECT_NE(ptrs[op.slot], nullptr);
      } else {
        a->free(ptrs[op.slot]);
      }
    }
    EXPECT_TRUE(InvariantsHold(*a.alloc)) << "step " << k;
    r.remapped.push_back(a->stats().vmm.remapped - before);
  }
  const Stats s = a->stats();
  r.bought = s.vmm.remap_bought;
  r.efficiency = double(s.requested_bytes.all.peak) / double(s.reserved_bytes.all.peak);
  r.device_seconds = modeled_device_seconds(s);
  return r;
}

TEST(Property, RepeatedStepsStopRemappingOnceItRecurs) {
  int recurring = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE(seed);
    const Repeated on = RepeatStep(seed, "", 30), off = RepeatStep(seed, "remap_overhead:off", 30),
                   es = RepeatStep(seed, "policy:cca,expandable_segments:True", 30);
    // Each need is bought after four rentals: by step 10 nothing moves.
    for (int k = 10; k < 30; ++k) EXPECT_EQ(on.remapped[k], 0) << "step " << k;
    if (off.remapped.back() > 0) {
      ++recurring;
      // Each need bought once: no more granules than one step moved.
      EXPECT_LE(on.bought, off.remapped.back());
      EXPECT_LT(on.device_seconds, off.device_seconds);
    } else {
      EXPECT_EQ(on.bought, 0) << "bought where nothing recurred";
    }
    // What is bought is what expandable segments would hold anyway (issue
    // 17's target 2; on the 16 seeds that recur hbm keeps 0.0014 to 0.02 above).
    EXPECT_GE(on.efficiency, es.efficiency - 0.002);
  }
  // 16 of the 30 steps move granules for ever without the rule.
  EXPECT_GE(recurring, 10) << "the steps hardly recur: the test shows little";
}

}  // namespace
}  // namespace hbmalloc

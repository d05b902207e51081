// Checkpointing and restoring a private pool (Allocator::checkpoint_pool /
// restore_pool), as CUDA graph trees do: under every policy, over random
// recordings, a restore frees exactly the blocks live now, brings back
// exactly the checkpoint's live blocks at their addresses, keeps every
// invariant and the statistics, and refuses what it cannot do without
// changing anything.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "support/invariants.h"
#include "support/policies.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::SimAllocator;

constexpr uint64_t kMiB = uint64_t(1) << 20;
constexpr PoolId kGraph{7, 1};
constexpr StreamId kCapture = 5;

bool on_capture(StreamId s) { return s == kCapture; }

// addr -> (size, requested) of the pool's live blocks.
std::map<uint64_t, std::pair<uint64_t, uint64_t>> live_in(const Layout& layout) {
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> out;
  for (const SegmentLayout& s : layout)
    for (const BlockLayout& b : s.blocks)
      if (b.allocated) out[b.addr] = {b.size, b.requested};
  return out;
}

// Allocations on the capture stream while the pool is routed to, and some frees.
void record(Allocator& a, std::mt19937_64& rng, std::set<void*>& live, int ops) {
  a.begin_allocate_to_pool(kGraph, on_capture);
  std::uniform_real_distribution<double> log_size(0.0, 25.0);  // 1 B .. 32 MiB
  for (int i = 0; i < ops; ++i) {
    if (live.empty() || rng() % 3 != 0) {
      live.insert(a.malloc(std::max<uint64_t>(1, uint64_t(std::exp2(log_size(rng)))), kCapture));
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      a.free(*it);
      live.erase(it);
    }
  }
  a.end_allocate_to_pool(kGraph);
}

class PoolCheckpoint : public ::testing::TestWithParam<const char*> {};

TEST_P(PoolCheckpoint, RestoreBringsBackExactlyTheCheckpointsLiveBlocks) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    SimAllocator a(0, GetParam());
    std::mt19937_64 rng(seed);
    a->create_pool(kGraph);
    std::set<void*> live;
    record(*a.alloc, rng, live, 60);
    const hbmalloc::PoolCheckpoint checkpoint = a->checkpoint_pool(kGraph);
    const auto live_then = live_in(checkpoint.segments);
    ASSERT_EQ(live_then.size(), live.size());
    const Stats before = a->stats();

    // A later branch of the tree: more recording, and tensors dying.
    record(*a.alloc, rng, live, 80);
    const std::set<void*> live_before_restore = live;

    const PoolRestore r = a->restore_pool(checkpoint);
    ASSERT_TRUE(InvariantsHold(*a.alloc));
    EXPECT_EQ(std::set<void*>(r.freed.begin(), r.freed.end()), live_before_restore);
    std::map<uint64_t, std::pair<uint64_t, uint64_t>> restored;
    for (const BlockLayout& b : r.allocated) restored[b.addr] = {b.size, b.requested};
    EXPECT_EQ(restored, live_then);
    EXPECT_EQ(live_in(a->checkpoint_pool(kGraph).segments), live_then) << "the pool's live blocks are the checkpoint's";
    const Stats after = a->stats();
    EXPECT_EQ(after.allocated_bytes.all.current, before.allocated_bytes.all.current);
    EXPECT_EQ(after.requested_bytes.all.current, before.requested_bytes.all.current);
    EXPECT_EQ(after.allocation.all.current, before.allocation.all.current);

    // Each restored block is an ordinary live block: it frees with its size.
    for (const auto& [addr, size_requested] : live_then)
      a->free(reinterpret_cast<void*>(addr), int64_t(size_requested.second));
    EXPECT_EQ(a->stats().allocated_bytes.all.current, 0);
    ASSERT_TRUE(InvariantsHold(*a.alloc));
  }
}

TEST_P(PoolCheckpoint, RestoringTwiceAndToAnEmptyCheckpoint) {
  SimAllocator a(0, GetParam());
  std::mt19937_64 rng(99);
  a->create_pool(kGraph);
  const hbmalloc::PoolCheckpoint empty = a->checkpoint_pool(kGraph);
  std::set<void*> live;
  record(*a.alloc, rng, live, 40);
  const hbmalloc::PoolCheckpoint full = a->checkpoint_pool(kGraph);
  EXPECT_EQ(a->restore_pool(full).allocated.size(), live.size());
  EXPECT_EQ(a->restore_pool(full).freed.size(), live.size()) << "the blocks restored the first time";
  const PoolRestore none = a->restore_pool(empty);
  EXPECT_EQ(none.freed.size(), live.size());
  EXPECT_TRUE(none.allocated.empty());
  EXPECT_EQ(a->stats().allocated_bytes.all.current, 0);
  ASSERT_TRUE(InvariantsHold(*a.alloc));
}

TEST_P(PoolCheckpoint, RefusalsChangeNothing) {
  SimAllocator a(0, GetParam());
  EXPECT_THROW(a->checkpoint_pool(kGraph), Error);
  a->create_pool(kGraph);
  std::mt19937_64 rng(5);
  std::set<void*> live;
  record(*a.alloc, rng, live, 30);
  hbmalloc::PoolCheckpoint bad = a->checkpoint_pool(kGraph);
  ASSERT_FALSE(bad.segments.empty());
  bad.segments.back().blocks.push_back({bad.segments.back().addr + bad.segments.back().size, 4096, 4096, true});
  const auto live_now = live_in(a->checkpoint_pool(kGraph).segments);
  try {
    a->restore_pool(bad);
    FAIL() << "a block outside the pool's memory was restored";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("outside the pool's memory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(live_in(a->checkpoint_pool(kGraph).segments), live_now) << "nothing changed";
  a->begin_allocate_to_pool(kGraph, on_capture);
  EXPECT_THROW(a->restore_pool(a->checkpoint_pool(kGraph)), Error) << "not while a graph is captured";
  a->end_allocate_to_pool(kGraph);
  hbmalloc::PoolCheckpoint other = a->checkpoint_pool(kGraph);
  other.pool = PoolId{8, 8};
  EXPECT_THROW(a->restore_pool(other), Error);
  ASSERT_TRUE(InvariantsHold(*a.alloc));
}

INSTANTIATE_TEST_SUITE_P(Policies, PoolCheckpoint, testing::EveryPolicy(), testing::PolicyName);

}  // namespace
}  // namespace hbmalloc

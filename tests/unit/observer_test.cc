// The observer interface (hbmalloc/observer.hpp): what an observer is told,
// in what order, and that what it is told adds up to what the allocator
// holds, under every policy, over long random sequences.
#include "hbmalloc/observer.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "support/invariants.h"
#include "support/policies.h"

namespace hbmalloc {
namespace {

using testing::SimAllocator;

constexpr uint64_t kMiB = uint64_t(1) << 20;
constexpr uint64_t kGiB = uint64_t(1) << 30;

uint64_t A(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Keeps every call as a line, and a ledger of what it was told: the live
// blocks and the reserved bytes.
struct Log final : AllocatorObserver {
  std::vector<std::string> lines;
  ObservedStart start;
  std::map<uint64_t, uint64_t> live;  // ptr -> bytes taken
  int64_t reserved = 0;
  bool refuse = false;
  std::string note;

  void attached(const ObservedStart& s) override {
    if (refuse) throw Error(ErrorCode::kInvalidArgument, "refused");
    start = s;
    for (const SegmentLayout& seg : s.layout) {
      reserved += int64_t(seg.size);
      for (const BlockLayout& b : seg.blocks)
        if (b.allocated) live[b.addr] = b.size;
    }
    lines.push_back("attached");
  }
  void detached(int device) override { lines.push_back("detached " + std::to_string(device)); }
  void allocated(int, uint64_t ptr, uint64_t requested, uint64_t size, Pool pool, StreamId stream) override {
    live[ptr] = size;
    lines.push_back("alloc " + std::to_string(requested) + (pool == Pool::kSmall ? " small" : " large") + " stream " +
                    std::to_string(stream));
  }
  void freed(int, uint64_t ptr) override {
    live.erase(ptr);
    lines.push_back("free");
  }
  void free_requested(int, uint64_t) override { lines.push_back("free requested"); }
  void free_completed(int, uint64_t ptr) override {
    live.erase(ptr);
    lines.push_back("free completed");
  }
  void stream_recorded(int, uint64_t, StreamId stream) override {
    lines.push_back("record_stream " + std::to_string(stream));
  }
  void cache_emptied(int) override { lines.push_back("empty_cache"); }
  void segment_changed(int, const SegmentEvent& e) override {
    const bool grows = e.action == SegmentAction::kAlloc || e.action == SegmentAction::kMap;
    reserved += grows ? int64_t(e.bytes) : -int64_t(e.bytes);
    const char* name = e.action == SegmentAction::kAlloc ? "segment alloc "
                       : e.action == SegmentAction::kFree ? "segment free "
                       : e.action == SegmentAction::kMap  ? "segment map "
                                                          : "segment unmap ";
    lines.push_back(name + std::to_string(e.bytes / kMiB) + "M");
  }
  void out_of_memory(const ObservedOom& oom) override {
    const Stats s = oom.stats();
    const Layout layout = oom.layout();
    lines.push_back("oom " + std::to_string(oom.request / kMiB) + "M reserved " +
                    std::to_string(s.reserved_bytes.all.current / int64_t(kMiB)) + "M in " +
                    std::to_string(layout.size()) + " segments");
  }
  std::string out_of_memory_note(int) override { return note; }

  std::string joined() const {
    std::string out;
    for (const std::string& l : lines) out += (out.empty() ? "" : ", ") + l;
    return out;
  }
};

TEST(Observer, IsToldEachOperationInOrder) {
  SimAllocator a(0, "policy:cca");
  auto log = std::make_shared<Log>();
  a->add_observer(log);
  void* p = a->malloc(3 * kMiB, 5);
  void* q = a->malloc(100, 5);
  a->free(q);
  a->empty_cache();
  a->free(p);
  a->empty_cache();
  EXPECT_EQ(log->joined(),
            "attached, segment alloc 20M, alloc 3145728 large stream 5, segment alloc 2M, alloc 100 small stream 5, "
            "free, empty_cache, segment free 2M, free, empty_cache, segment free 20M");
  EXPECT_TRUE(log->live.empty());
  EXPECT_EQ(log->reserved, 0);
}

TEST(Observer, HearsBothMomentsOfAFreeThatWaitsForAnotherStream) {
  SimAllocator a(0, "policy:cca");
  auto log = std::make_shared<Log>();
  a->add_observer(log);
  void* p = a->malloc(8 * kMiB, 1);
  a->record_stream(p, 2);
  a.sim->hold_stream(2);
  a->free(p);
  EXPECT_EQ(log->live.size(), 1u) << "the memory is still in use on stream 2";
  a.sim->complete_stream(2);
  a->malloc(8 * kMiB, 1);  // drains the pending free
  EXPECT_EQ(log->joined(),
            "attached, segment alloc 20M, alloc 8388608 large stream 1, record_stream 2, free requested, "
            "free completed, alloc 8388608 large stream 1");
}

TEST(Observer, StartsFromWhatTheAllocatorHolds) {
  SimAllocator a(0, "policy:cca");
  void* p = a->malloc(3 * kMiB, 0);
  void* q = a->malloc(4 * kMiB, 0);
  a->record_stream(q, 9);
  a.sim->hold_stream(9);
  a->free(q);  // live, its free pending
  auto log = std::make_shared<Log>();
  a->add_observer(log);
  EXPECT_EQ(log->start.device, 0);
  EXPECT_EQ(log->start.capacity, 0u);
  ASSERT_EQ(log->start.layout.size(), 1u);
  EXPECT_EQ(log->reserved, int64_t(a->usage().reserved));
  EXPECT_EQ(log->live.size(), 2u);
  EXPECT_TRUE(log->live.contains(A(p)));
  EXPECT_EQ(log->start.pending_frees, std::vector<uint64_t>{A(q)});
  bool has_policy = false;
  for (const auto& [key, value] : log->start.settings) has_policy = has_policy || key == "policy";
  EXPECT_TRUE(has_policy);
}

TEST(Observer, OutOfMemoryIsToldWithFiguresAndItsNoteEndsTheError) {
  SimAllocator a(64 * kMiB, "policy:cca");
  auto log = std::make_shared<Log>();
  log->note = "; see the dump";
  a->add_observer(log);
  void* p = a->malloc(40 * kMiB);
  try {
    a->malloc(40 * kMiB);
    FAIL() << "expected out of memory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_TRUE(std::string(e.what()).ends_with("; see the dump")) << e.what();
  }
  EXPECT_EQ(log->lines.back(), "oom 40M reserved 40M in 1 segments");
  a->free(p);  // still usable
  EXPECT_NE(a->malloc(40 * kMiB), nullptr);
}

TEST(Observer, AttachingTwiceDoesNothingAndRemovalIsTold) {
  SimAllocator a;
  auto log = std::make_shared<Log>();
  a->add_observer(log);
  a->add_observer(log);
  EXPECT_EQ(log->joined(), "attached");
  a->remove_observer(log.get());
  a->remove_observer(log.get());  // no longer there: nothing
  a->free(a->malloc(kMiB));
  EXPECT_EQ(log->joined(), "attached, detached 0");
  EXPECT_THROW(a->add_observer(nullptr), Error);
}

TEST(Observer, ARefusalLeavesItDetached) {
  SimAllocator a;
  auto log = std::make_shared<Log>();
  log->refuse = true;
  EXPECT_THROW(a->add_observer(log), Error);
  a->free(a->malloc(kMiB));
  EXPECT_TRUE(log->lines.empty());
}

TEST(Observer, IsToldWhenTheAllocatorGoesAndNothingAfter) {
  auto log = std::make_shared<Log>();
  {
    SimAllocator a;
    a->add_observer(log);
    a->malloc(5 * kMiB);  // still held when the allocator goes
  }
  EXPECT_EQ(log->lines.back(), "detached 0");
}

// Whatever the policy, the observer's ledger (segments and pages taken minus
// given back; blocks handed out minus freed) is what the allocator reports.
class ObserverLedger : public ::testing::TestWithParam<const char*> {};

TEST_P(ObserverLedger, AddsUpToTheAllocatorsFiguresOverRandomOperations) {
  SimAllocator a(8 * kGiB, GetParam());
  auto log = std::make_shared<Log>();
  void* early = a->malloc(7 * kMiB);  // held before the observer came
  a->add_observer(log);
  std::mt19937_64 rng(20261206);
  std::vector<void*> live{early};
  for (int i = 0; i < 20000; ++i) {
    const unsigned op = rng() % 100;
    if (op < 55 || live.empty()) {
      const uint64_t size = rng() % 4 == 0 ? 1 + rng() % (256 * kMiB) : 1 + rng() % (2 * kMiB);
      try {
        live.push_back(a->malloc(size, rng() % 3));
      } catch (const Error& e) {
        ASSERT_EQ(e.code(), ErrorCode::kOutOfMemory);
      }
    } else if (op < 98) {
      const size_t k = rng() % live.size();
      a->free(live[k]);
      live[k] = live.back();
      live.pop_back();
    } else {
      a->empty_cache();
    }
    if (i % 997 == 0) {
      ASSERT_EQ(log->reserved, int64_t(a->usage().reserved)) << "after operation " << i;
      uint64_t allocated = 0;
      for (const auto& [ptr, bytes] : log->live) allocated += bytes;
      ASSERT_EQ(allocated, a->usage().allocated) << "after operation " << i;
    }
  }
  ASSERT_EQ(log->reserved, int64_t(a->usage().reserved));
  EXPECT_EQ(log->live.size(), live.size());
}

INSTANTIATE_TEST_SUITE_P(Policies, ObserverLedger, testing::EveryPolicy(), testing::PolicyName);

}  // namespace
}  // namespace hbmalloc

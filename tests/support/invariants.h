// Test helpers: an independent shadow of live ranges (no two live blocks may
// overlap), and a sim-backed allocator whose streams a test can hold.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "backend/sim_backend.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/layout.hpp"
#include "hbmalloc/stats.hpp"

namespace hbmalloc::testing {

// Live ranges as the caller sees them, kept apart from the allocator.
class LiveRanges {
 public:
  // Adds [p, p+size); returns "" or a description of the overlap.
  std::string add(void* p, uint64_t size) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (a == 0) return "null pointer";
    auto next = ranges_.lower_bound(a);
    if (next != ranges_.end() && next->first < a + size) return "overlaps the next live block";
    if (next != ranges_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second > a) return "overlaps the previous live block";
    }
    ranges_[a] = size;
    return "";
  }
  void remove(void* p) { ranges_.erase(reinterpret_cast<uintptr_t>(p)); }
  size_t size() const { return ranges_.size(); }

 private:
  std::map<uintptr_t, uint64_t> ranges_;
};

struct SimAllocator {
  SimBackend* sim;  // owned by alloc
  std::unique_ptr<Allocator> alloc;

  explicit SimAllocator(uint64_t capacity = 0, std::string conf = "") {
    Config c = Config::parse(conf);
    c.backend = "sim";
    auto backend = std::make_unique<SimBackend>(0, capacity);
    sim = backend.get();
    // A clock that stands still until a test moves it: the remap budget
    // (on by default) then decides the same way on every run.
    sim->set_trace_time(0);
    alloc = std::make_unique<Allocator>(c, std::move(backend));
  }
  Allocator* operator->() { return alloc.get(); }
};

inline ::testing::AssertionResult InvariantsHold(const Allocator& a) {
  try {
    a.check_invariants();
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << e.what();
  }
}

// The layout (what snapshots and reports show) agrees with the statistics,
// pool by pool: its segments are the segments counted and hold the bytes
// reserved, and its allocated blocks hold the bytes active (handed out or
// waiting on other streams' work).
inline ::testing::AssertionResult LayoutAgreesWithStats(const Allocator& a) {
  const Layout layout = a.layout();
  const Stats s = a.stats();
  for (Pool pool : {Pool::kSmall, Pool::kLarge}) {
    int64_t segments = 0, reserved = 0, allocated = 0;
    for (const SegmentLayout& seg : layout) {
      if (seg.pool != pool) continue;
      ++segments;
      reserved += int64_t(seg.size);
      for (const BlockLayout& b : seg.blocks) allocated += b.allocated ? int64_t(b.size) : 0;
    }
    const char* name = pool == Pool::kSmall ? "small pool: " : "large pool: ";
    if (segments != s.segment.of(pool).current)
      return ::testing::AssertionFailure() << name << segments << " segments laid out, " << s.segment.of(pool).current
                                           << " counted";
    if (reserved != s.reserved_bytes.of(pool).current)
      return ::testing::AssertionFailure() << name << reserved << " bytes in segments laid out, "
                                           << s.reserved_bytes.of(pool).current << " reserved";
    if (allocated != s.active_bytes.of(pool).current)
      return ::testing::AssertionFailure() << name << allocated << " bytes in allocated blocks laid out, "
                                           << s.active_bytes.of(pool).current << " active";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace hbmalloc::testing

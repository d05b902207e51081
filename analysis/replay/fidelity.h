// How closely a replay reproduced what the recording allocator did to its
// segments: the (action, bytes) sequences of segment events (alloc, free,
// map, unmap) compared by their longest common subsequence.
#pragma once

#include <cstdint>
#include <vector>

#include "hbmalloc/layout.hpp"
#include "hbmalloc/observer.hpp"
#include "record/trace.h"

namespace hbmalloc::replay {

struct Fidelity {
  uint64_t recorded = 0;  // segment events in the trace
  uint64_t replayed = 0;  // segment events of the replay
  uint64_t matched = 0;   // longest common subsequence of the two
  double matched_fraction = 1.0;  // matched / the longer count (1 when both are empty)
  uint64_t first_difference = 0;  // events alike from the start (= the shorter count when one is a prefix)
  bool exact = true;  // false: matched is a lower bound (the comparison's work was bounded, see lcs.h)
};

// An allocator's observer that keeps what it did to its segments, in order:
// the replay's side of the comparison.
class SegmentLog final : public AllocatorObserver {
 public:
  std::vector<SegmentEvent> events;
  void segment_changed(int, const SegmentEvent& e) override { events.push_back(e); }
};

// The trace's own segment events, as a SegmentLog keeps them.
std::vector<SegmentEvent> recorded_segment_events(const trace::DeviceTrace& d);

Fidelity compare_segment_events(const std::vector<SegmentEvent>& recorded, const std::vector<SegmentEvent>& replayed);

}  // namespace hbmalloc::replay

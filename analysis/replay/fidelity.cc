#include "replay/fidelity.h"

#include <algorithm>

#include "replay/lcs.h"

namespace hbmalloc::replay {
namespace {

// (action, bytes) as one symbol: two bits of action under the byte count.
std::vector<uint64_t> symbols(const std::vector<SegmentEvent>& events) {
  std::vector<uint64_t> out;
  out.reserve(events.size());
  for (const SegmentEvent& e : events) out.push_back(e.bytes << 2 | uint64_t(e.action));
  return out;
}

}  // namespace

std::vector<SegmentEvent> recorded_segment_events(const trace::DeviceTrace& d) {
  std::vector<SegmentEvent> out;
  for (const trace::Event& e : d.events) {
    switch (e.action) {
      case trace::Action::kSegmentAlloc: out.push_back({SegmentAction::kAlloc, e.addr, e.size}); break;
      case trace::Action::kSegmentFree: out.push_back({SegmentAction::kFree, e.addr, e.size}); break;
      case trace::Action::kSegmentMap: out.push_back({SegmentAction::kMap, e.addr, e.size}); break;
      case trace::Action::kSegmentUnmap: out.push_back({SegmentAction::kUnmap, e.addr, e.size}); break;
      default: break;
    }
  }
  return out;
}

Fidelity compare_segment_events(const std::vector<SegmentEvent>& recorded, const std::vector<SegmentEvent>& replayed) {
  const std::vector<uint64_t> a = symbols(recorded), b = symbols(replayed);
  Fidelity f;
  f.recorded = a.size();
  f.replayed = b.size();
  const BoundedLcs lcs = lcs_length_bounded(a, b);
  f.matched = lcs.length;
  f.exact = lcs.exact;
  const uint64_t longer = std::max(a.size(), b.size());
  f.matched_fraction = longer == 0 ? 1.0 : double(f.matched) / double(longer);
  f.first_difference = uint64_t(std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin());
  return f;
}

}  // namespace hbmalloc::replay

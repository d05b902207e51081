#include "replay/assign_addresses.h"

#include <algorithm>

#include "policy/policy_catalog.h"
#include "replay/replay.h"
#include "record/segment_ranges.h"

namespace hbmalloc::replay {
namespace {

trace::Action action_of(SegmentAction a) {
  switch (a) {
    case SegmentAction::kAlloc: return trace::Action::kSegmentAlloc;
    case SegmentAction::kFree: return trace::Action::kSegmentFree;
    case SegmentAction::kMap: return trace::Action::kSegmentMap;
    case SegmentAction::kUnmap: return trace::Action::kSegmentUnmap;
  }
  return trace::Action::kMarker;
}

// One device replayed; the trace's own segment picture and events give way
// to the replay's.
void assign(const trace::Trace& trace, trace::DeviceTrace& d) {
  trace::Trace alone;
  alone.source = trace.source;
  alone.has_history = true;
  trace::DeviceTrace& bare = alone.devices.emplace_back();
  bare.device = d.device;
  bare.block_count = d.block_count;
  bare.live_at_start = d.live_at_start;
  // User metadata changes follow their events: first to the bare events' numbers.
  auto change = d.user_metadata.begin();
  for (uint64_t i = 0; i < d.events.size(); ++i) {
    for (; change != d.user_metadata.end() && change->event == i; ++change) change->event = bare.events.size();
    const trace::Event& e = d.events[i];
    if (e.action != trace::Action::kSegmentAlloc && e.action != trace::Action::kSegmentFree &&
        e.action != trace::Action::kSegmentMap && e.action != trace::Action::kSegmentUnmap)
      bare.events.push_back(e);
  }
  for (; change != d.user_metadata.end(); ++change) change->event = bare.events.size();

  AddressLog log;
  ReplayOptions o;
  o.config.policy = std::string(recording_policy().name);
  o.device = d.device;
  o.infer_empty_cache = false;  // the segment events are gone: nothing to infer from
  o.addresses = &log;
  replay(alone, o);

  trace::SegmentRanges start;
  std::vector<trace::Event> events;
  events.reserve(bare.events.size() + log.segment_events.size());
  size_t next = 0;
  for (const auto& [at, s] : log.segment_events) {
    if (at != UINT64_MAX) break;
    start.add(s.addr, {s.bytes, 0, s.bytes <= (uint64_t(1) << 20), false});
    ++next;
  }
  // Then to the first event made for its event, the replay's segment events included.
  change = d.user_metadata.begin();
  for (uint64_t i = 0; i < bare.events.size(); ++i) {
    for (; change != d.user_metadata.end() && change->event == i; ++change) change->event = events.size();
    for (; next < log.segment_events.size() && log.segment_events[next].first == i; ++next) {
      const SegmentEvent& s = log.segment_events[next].second;
      trace::Event e;
      e.action = action_of(s.action);
      e.addr = s.addr;
      e.size = s.bytes;
      e.time_us = bare.events[i].time_us;
      events.push_back(e);
    }
    trace::Event e = bare.events[i];
    if (e.id != trace::kNoBlock && e.id < log.block_addr.size()) e.addr = log.block_addr[e.id];
    events.push_back(e);
  }
  for (trace::BlockInfo& b : bare.live_at_start)
    if (b.id < log.block_addr.size()) b.addr = log.block_addr[b.id];

  for (; change != d.user_metadata.end(); ++change) change->event = events.size();
  // Two changes now at one event: the later holds.
  auto later = [](const trace::MetadataChange& a, const trace::MetadataChange& b) { return a.event == b.event; };
  std::reverse(d.user_metadata.begin(), d.user_metadata.end());
  d.user_metadata.erase(std::unique(d.user_metadata.begin(), d.user_metadata.end(), later), d.user_metadata.end());
  std::reverse(d.user_metadata.begin(), d.user_metadata.end());
  d.live_at_start = std::move(bare.live_at_start);
  d.events = std::move(events);
  d.segments_at_start = start.segments();
  d.segments_at_end.clear();
  d.has_segment_picture = false;  // writers derive the final picture by a forward walk
}

}  // namespace

bool lacks_addresses(const trace::DeviceTrace& d) {
  for (const trace::BlockInfo& b : d.live_at_start)
    if (b.addr == 0) return true;
  return std::any_of(d.events.begin(), d.events.end(),
                     [](const trace::Event& e) { return e.action == trace::Action::kAlloc && e.addr == 0; });
}

trace::Trace with_replayed_addresses(const trace::Trace& trace) {
  trace::Trace out = trace;
  for (trace::DeviceTrace& d : out.devices)
    if (lacks_addresses(d)) assign(trace, d);
  return out;
}

}  // namespace hbmalloc::replay

#include "trace/trace.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "hbmalloc/error.hpp"

namespace hbmalloc::trace {
namespace {

constexpr std::array<std::pair<Action, std::string_view>, 11> kNames = {{
    {Action::kAlloc, "alloc"},
    {Action::kFreeRequested, "free_requested"},
    {Action::kFree, "free_completed"},
    {Action::kSegmentAlloc, "segment_alloc"},
    {Action::kSegmentFree, "segment_free"},
    {Action::kSegmentMap, "segment_map"},
    {Action::kSegmentUnmap, "segment_unmap"},
    {Action::kOom, "oom"},
    {Action::kEmptyCache, "empty_cache"},
    {Action::kSnapshot, "snapshot"},
    {Action::kMarker, "marker"},
}};

}  // namespace

const char* action_name(Action a) {
  for (const auto& [action, name] : kNames)
    if (action == a) return name.data();
  return "unknown";
}

std::optional<Action> action_from_name(std::string_view name) {
  for (const auto& [action, n] : kNames)
    if (n == name) return action;
  return std::nullopt;
}

const DeviceTrace* Trace::device(int number) const {
  for (const DeviceTrace& d : devices)
    if (d.device == number) return &d;
  return nullptr;
}

const DeviceTrace& Trace::device_or_error(int number) const {
  if (const DeviceTrace* d = device(number)) return *d;
  std::string have;
  for (const DeviceTrace& x : devices) have += (have.empty() ? "" : ", ") + std::to_string(x.device);
  throw Error(ErrorCode::kInvalidArgument, source + ": no device " + std::to_string(number) +
                                               " in the trace (devices: " + (have.empty() ? "none" : have) + ")");
}

TraceFigures figures_of(const DeviceTrace& d) {
  TraceFigures f;
  f.events = d.events.size();

  // Requested bytes per live block, so a free subtracts what its alloc added.
  std::vector<uint64_t> live(d.block_count, 0);
  uint64_t requested = 0;
  for (const BlockInfo& b : d.live_at_start) {
    if (b.id < live.size()) live[b.id] = b.requested;
    requested += b.requested;
  }
  uint64_t peak = requested;

  uint64_t reserved = 0;
  for (const SegmentInfo& s : d.segments_at_start) reserved += s.size;
  uint64_t peak_reserved = reserved;

  for (const Event& e : d.events) {
    if (e.time_us != 0) {
      if (f.first_time_us == 0 || e.time_us < f.first_time_us) f.first_time_us = e.time_us;
      f.last_time_us = std::max(f.last_time_us, e.time_us);
    }
    switch (e.action) {
      case Action::kAlloc:
        ++f.allocs;
        if (e.id < live.size()) live[e.id] = e.size;
        requested += e.size;
        peak = std::max(peak, requested);
        break;
      case Action::kFree:
        ++f.frees;
        if (e.id < live.size()) {
          requested -= live[e.id];
          live[e.id] = 0;
        }
        break;
      case Action::kSegmentAlloc:
      case Action::kSegmentMap:
        ++f.segment_events;
        reserved += e.size;
        peak_reserved = std::max(peak_reserved, reserved);
        break;
      case Action::kSegmentFree:
      case Action::kSegmentUnmap:
        ++f.segment_events;
        reserved -= e.size;
        break;
      case Action::kOom:
        // PyTorch records the device's free bytes after releasing its cache.
        if (f.native_ooms++ == 0 && d.has_segment_picture) f.native_capacity = reserved + e.addr;
        break;
      default:
        break;
    }
  }
  f.peak_requested = peak;
  if (d.has_segment_picture) f.native_peak_reserved = peak_reserved;
  return f;
}

}  // namespace hbmalloc::trace

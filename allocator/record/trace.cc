#include "record/trace.h"

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

FiguresTally::FiguresTally(const DeviceTrace& d)
    : live_(d.block_count, 0), has_segment_picture_(d.has_segment_picture) {
  f_.events = d.events.size();
  for (const BlockInfo& b : d.live_at_start) {
    if (b.id < live_.size()) live_[b.id] = b.requested;
    requested_ += b.requested;
  }
  f_.peak_requested = requested_;
  for (const SegmentInfo& s : d.segments_at_start) reserved_ += s.size;
  peak_reserved_ = reserved_;
}

TraceFigures FiguresTally::finish() const {
  TraceFigures f = f_;
  f.peak_demand = std::max(f.peak_demand, f.peak_requested);
  if (has_segment_picture_) f.native_peak_reserved = peak_reserved_;
  return f;
}

TraceFigures figures_of(const DeviceTrace& d) {
  FiguresTally tally(d);
  for (const Event& e : d.events) tally.add(e);
  return tally.finish();
}

int checked_device(int64_t number, const std::string& where) {
  if (number < 0 || number >= kMaxDevices)
    throw Error(ErrorCode::kInvalidArgument, where + ": device " + std::to_string(number) +
                                                 " out of range (0.." +
                                                 std::to_string(kMaxDevices - 1) + ")");
  return static_cast<int>(number);
}

}  // namespace hbmalloc::trace

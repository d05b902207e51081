#include "backend/emulated_backend.h"

#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

EventId EmulatedBackend::record_event(StreamId stream) {
  StreamClock& clock = clocks_[stream];
  uint64_t seq = ++clock.recorded;
  if (!clock.held) clock.completed = seq;
  EventId id = next_event_++;
  Event e{stream, seq};
  if (lag_us_ > 0)
    if (const std::optional<int64_t> now = now_us()) e.runs_at = *now + lag_us_;
  events_[id] = e;
  return id;
}

bool EmulatedBackend::event_done(EventId event) {
  auto it = events_.find(event);
  if (it == events_.end()) throw Error(ErrorCode::kBackend, std::string(name()) + ": unknown event");
  Event& e = it->second;
  if (e.seq > clocks_[e.stream].completed) return false;
  if (e.runs_at == kRan) return true;
  // The clock only moves forward, so a stream's events run in their order.
  const std::optional<int64_t> now = now_us();
  if (now && *now < e.runs_at) return false;
  e.runs_at = kRan;
  return true;
}

void EmulatedBackend::ran(std::optional<StreamId> stream) {
  if (lag_us_ == 0) return;
  for (auto& [id, e] : events_)
    if (!stream || e.stream == *stream) e.runs_at = kRan;
}

void EmulatedBackend::synchronize() {
  for (auto& [stream, clock] : clocks_) clock.completed = clock.recorded;
  ran(std::nullopt);
}

void EmulatedBackend::complete_stream(StreamId stream) {
  StreamClock& clock = clocks_[stream];
  clock.completed = clock.recorded;
  clock.held = false;
  ran(stream);
}

}  // namespace hbmalloc

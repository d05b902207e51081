#include "backend/emulated_backend.h"

#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

EventId EmulatedBackend::record_event(StreamId stream) {
  StreamClock& clock = clocks_.of(stream);
  uint64_t seq = ++clock.recorded;
  if (!clock.held) clock.completed = seq;
  EventId id = next_event_++;
  Event e{stream, seq};
  if (lag_us_ > 0)
    if (const std::optional<int64_t> now = now_us()) e.runs_at = *now + lag_us_;
  events_.insert(id, e);
  return id;
}

bool EmulatedBackend::event_done(EventId event) {
  Event* e = event == 0 ? nullptr : events_.find(event);  // 0 is no id (the table's empty key)
  if (e == nullptr) throw Error(ErrorCode::kBackend, std::string(name()) + ": unknown event");
  const StreamClock& clock = clocks_.of(e->stream);
  if (e->seq > clock.completed) return false;
  if (e->runs_at == kRan || e->seq <= clock.ran) return true;
  // The clock only moves forward, so a stream's events run in their order.
  const std::optional<int64_t> now = now_us();
  if (now && *now < e->runs_at) return false;
  e->runs_at = kRan;
  return true;
}

void EmulatedBackend::release_event(EventId event) {
  if (event != 0) events_.erase(event);
}

void EmulatedBackend::synchronize() {
  for (auto& [stream, clock] : clocks_) clock->completed = clock->ran = clock->recorded;
}

void EmulatedBackend::complete_stream(StreamId stream) {
  StreamClock& clock = clocks_.of(stream);
  clock.completed = clock.ran = clock.recorded;
  clock.held = false;
}

}  // namespace hbmalloc

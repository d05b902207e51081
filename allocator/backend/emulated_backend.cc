#include "backend/emulated_backend.h"

#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

EventId EmulatedBackend::record_event(StreamId stream) {
  StreamClock& clock = clocks_[stream];
  uint64_t seq = ++clock.recorded;
  if (!clock.held) clock.completed = seq;
  EventId id = next_event_++;
  events_[id] = {stream, seq};
  return id;
}

bool EmulatedBackend::event_done(EventId event) {
  auto it = events_.find(event);
  if (it == events_.end()) throw Error(ErrorCode::kBackend, std::string(name()) + ": unknown event");
  return it->second.seq <= clocks_[it->second.stream].completed;
}

void EmulatedBackend::synchronize() {
  for (auto& [stream, clock] : clocks_) clock.completed = clock.recorded;
}

void EmulatedBackend::complete_stream(StreamId stream) {
  StreamClock& clock = clocks_[stream];
  clock.completed = clock.recorded;
  clock.held = false;
}

}  // namespace hbmalloc

#include "backend/event_clock.h"

#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

EventId EventClock::record(StreamId stream) {
  StreamClock& clock = clocks_[stream];
  uint64_t seq = ++clock.recorded;
  if (!clock.held) clock.completed = seq;
  EventId id = next_event_++;
  events_[id] = {stream, seq};
  return id;
}

bool EventClock::done(EventId event) {
  auto it = events_.find(event);
  if (it == events_.end()) throw Error(ErrorCode::kBackend, std::string(who_) + ": unknown event");
  return it->second.seq <= clocks_[it->second.stream].completed;
}

void EventClock::synchronize() {
  for (auto& [stream, clock] : clocks_) clock.completed = clock.recorded;
}

void EventClock::complete_stream(StreamId stream) {
  StreamClock& clock = clocks_[stream];
  clock.completed = clock.recorded;
  clock.held = false;
}

}  // namespace hbmalloc

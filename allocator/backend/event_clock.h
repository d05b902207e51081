// Stream events for backends whose work completes at once (sim, host): an
// event is done when recorded, unless its stream is held, which tests use to
// stand for queued work that has not run yet.
#pragma once

#include <cstdint>

#include "absl/container/btree_map.h"
#include "backend/backend.h"

namespace hbmalloc {

class EventClock {
 public:
  // `who` names the backend in errors.
  explicit EventClock(const char* who) : who_(who) {}

  EventId record(StreamId stream);
  // Throws Error(kBackend) for an event not recorded or already released.
  bool done(EventId event);
  void release(EventId event) { events_.erase(event); }
  // Everything recorded so far is done (holds stay for later events).
  void synchronize();

  // While a stream is held, events recorded on it stay pending until
  // complete_stream() (or synchronize()).
  void hold_stream(StreamId stream) { clocks_[stream].held = true; }
  void complete_stream(StreamId stream);

 private:
  struct StreamClock {
    bool held = false;
    uint64_t recorded = 0;   // events recorded so far
    uint64_t completed = 0;  // events at or below this are done
  };
  struct Event {
    StreamId stream;
    uint64_t seq;
  };
  const char* who_;
  absl::btree_map<StreamId, StreamClock> clocks_;
  absl::btree_map<EventId, Event> events_;
  EventId next_event_ = 1;
};

}  // namespace hbmalloc

// What the sim and host backends share: a device emulated in this process,
// whose capacity is counted by hand and whose work completes at once (or a
// set lag later, a GPU running behind its host). A stream event is done when
// recorded, unless its stream is held, which tests use to stand for queued
// work that has not run yet.
#pragma once

#include <cstdint>
#include <optional>

#include "backend/backend.h"
#include "core/per_stream.h"
#include "core/pointer_map.h"

namespace hbmalloc {

class EmulatedBackend : public Backend {
 public:
  int device() const final { return device_; }
  uint64_t capacity() const final { return capacity_; }
  EventId record_event(StreamId stream) final;
  // Throws Error(kBackend) for an event not recorded or already released.
  bool event_done(EventId event) final;
  void release_event(EventId event) final;
  // Everything recorded so far is done (holds stay for later events).
  void synchronize() final;

  // A GPU running behind its host: work queued on a stream runs `us` after it
  // was queued (by now_us()), so an event is done that long after it was
  // recorded (0, the default: at once). Holds, synchronize() and a segment's
  // free still complete work at once.
  void set_work_lag_us(int64_t us) { lag_us_ = us; }

  // Test hooks: while a stream is held, events recorded on it stay pending
  // until complete_stream() (or synchronize()).
  void hold_stream(StreamId stream) { clocks_.of(stream).held = true; }
  void complete_stream(StreamId stream);

  // Physical bytes held: live segments plus created granules.
  uint64_t used_bytes() const { return used_; }

 protected:
  // capacity 0 means unlimited.
  EmulatedBackend(int device, uint64_t capacity) : device_(device), capacity_(capacity) {}
  // Freeing a plain segment synchronizes first, as cudaFree does: queued work
  // on any stream finishes before the memory can be handed out again.
  void complete_work_before_free() { synchronize(); }
  bool has_room(uint64_t bytes) const { return capacity_ == 0 || (bytes <= capacity_ && used_ <= capacity_ - bytes); }

  const int device_;
  const uint64_t capacity_;
  uint64_t used_ = 0;

 private:
  struct StreamClock {
    bool held = false;
    uint64_t recorded = 0;   // events recorded so far
    uint64_t completed = 0;  // events at or below this are done (held: those before the hold)
    uint64_t ran = 0;        // with a work lag: events at or below this ran, whatever the clock says
  };
  static constexpr int64_t kRan = INT64_MIN;
  struct Event {
    StreamId stream;
    uint64_t seq;
    int64_t runs_at = kRan;  // with a work lag: the clock time its work runs
  };
  PerStream<StreamClock> clocks_;
  // Keyed by id (never 0); an open-addressing table, since a replay records and
  // releases an event at many frees (fences).
  PointerMap<Event> events_;
  EventId next_event_ = 1;
  int64_t lag_us_ = 0;
};

}  // namespace hbmalloc

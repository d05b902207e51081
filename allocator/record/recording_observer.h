// The recorder as one of an Allocator's observers: it turns what the
// allocator tells into the recorder's events and, on out of memory, writes
// the dump (the recent past as a trace, and a summary) once the allocator's
// lock is let go. Allocator::attach_recorder attaches one per device.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "hbmalloc/observer.hpp"
#include "hbmalloc/recorder.hpp"
#include "record/oom_dump.h"
#include "record/recorder.h"

namespace hbmalloc::trace {

class RecordingObserver final : public AllocatorObserver {
 public:
  explicit RecordingObserver(std::shared_ptr<Recorder> recorder)
      : recorder_(std::move(recorder)), engine_(recorder_->engine()) {}

  // Throws Error when the recorder records this device already.
  void attached(const ObservedStart& start) override;
  void detached(int device) override { engine_.detach(device); }

  void allocated(int device, uint64_t ptr, uint64_t requested, uint64_t size, Pool pool, StreamId stream) override {
    engine_.alloc(device, ptr, requested, size, pool == Pool::kSmall, stream);
  }
  void freed(int device, uint64_t ptr) override { engine_.free(device, ptr); }
  void free_requested(int device, uint64_t ptr) override { engine_.free_requested(device, ptr); }
  void free_completed(int device, uint64_t ptr) override { engine_.free_completed(device, ptr); }
  void stream_recorded(int device, uint64_t ptr, StreamId stream) override {
    engine_.record_stream(device, ptr, stream);
  }
  void cache_emptied(int device) override { engine_.empty_cache(device); }
  void segment_changed(int device, const SegmentEvent& e) override;

  // Records the failure and, when a dump is asked for, copies what it needs.
  void out_of_memory(const ObservedOom& oom) override;
  // Writes the dump copied by this thread's failure; never throws (a failed
  // dump is told in the note).
  std::string out_of_memory_note(int device) override;

  const Recorder& recorder() const { return *recorder_; }

 private:
  struct PendingDump {
    Trace recent;
    OomFacts facts;
    uint64_t generation = 0;  // of the memory buffer recent was copied from
  };

  std::shared_ptr<Recorder> recorder_;
  TraceRecorder& engine_;
  std::mutex mu_;  // guards pending_: threads may fail at once
  std::map<std::thread::id, PendingDump> pending_;
};

}  // namespace hbmalloc::trace

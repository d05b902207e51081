// A simulated device: tracks capacity, fake addresses and stream events, and
// never touches memory. An 80 GiB trace replays on a laptop.
#pragma once

#include <cstdint>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "backend/backend.h"
#include "core/pointer_map.h"

namespace hbmalloc {

class SimBackend final : public Backend {
 public:
  // capacity 0 means unlimited.
  SimBackend(int device, uint64_t capacity);

  std::string_view name() const override { return "sim"; }
  int device() const override { return device_; }
  uint64_t capacity() const override { return capacity_; }
  void* malloc_segment(uint64_t bytes) override;
  void free_segment(void* ptr, uint64_t bytes) override;
  EventId record_event(StreamId stream) override;
  bool event_done(EventId event) override;
  void release_event(EventId event) override;
  void synchronize() override;

  // A segment at exactly [addr, addr + bytes) (a replay putting segments where
  // the recording had them); nullptr when that range overlaps a live segment
  // or this device's own window, or the device is full. Freed as any other.
  void* place_segment(uint64_t addr, uint64_t bytes);

  // Test hooks: while a stream is held, events recorded on it stay pending
  // until complete_stream() (or synchronize()) runs.
  void hold_stream(StreamId stream);
  void complete_stream(StreamId stream);

  // Each device hands out addresses from its own window of this many bytes;
  // an unlimited device that fills it reports out of memory.
  static constexpr uint64_t kWindow = uint64_t(1) << 48;
  uint64_t window_base() const { return (uint64_t(device_) + 1) * kWindow; }

  uint64_t used_bytes() const { return used_; }
  size_t live_segments() const { return live_.size(); }

 private:
  static constexpr uint64_t kAlign = 2ull << 20;
  uint64_t take_range(uint64_t bytes);  // 0 when the window is full
  void give_back_range(uint64_t addr, uint64_t bytes);

  int device_;
  uint64_t capacity_;
  uint64_t used_ = 0;
  uint64_t next_addr_;                                   // bump pointer past all ranges
  absl::btree_map<uint64_t, uint64_t> free_by_addr_;     // addr -> size, coalesced
  absl::btree_set<std::pair<uint64_t, uint64_t>> free_by_size_;  // (size, addr)
  PointerMap<uint64_t> live_;  // addr -> size; a hash map: one lookup per segment malloc/free
  absl::btree_map<uint64_t, uint64_t> placed_;  // addr -> size of the live placed segments

  struct StreamClock {
    bool held = false;
    uint64_t recorded = 0;   // events recorded so far
    uint64_t completed = 0;  // events at or below this are done
  };
  struct Event {
    StreamId stream;
    uint64_t seq;
  };
  absl::btree_map<StreamId, StreamClock> clocks_;
  absl::btree_map<EventId, Event> events_;
  EventId next_event_ = 1;
};

}  // namespace hbmalloc

// A simulated device: tracks capacity, fake addresses, VMM mappings and stream
// events, and never touches memory. An 80 GiB trace replays on a laptop.
#pragma once

#include <cstdint>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "backend/backend.h"
#include "core/pointer_map.h"

namespace hbmalloc {

class SimBackend final : public Backend {
 public:
  static constexpr uint64_t kDefaultGranularity = 2ull << 20;  // as CUDA devices

  // capacity 0 means unlimited; granularity is the VMM granule (a power of two).
  SimBackend(int device, uint64_t capacity, uint64_t granularity = kDefaultGranularity);

  std::string_view name() const override { return "sim"; }
  int device() const override { return device_; }
  uint64_t capacity() const override { return capacity_; }
  void* malloc_segment(uint64_t bytes) override;
  void free_segment(void* ptr, uint64_t bytes) override;
  EventId record_event(StreamId stream) override;
  bool event_done(EventId event) override;
  void release_event(EventId event) override;
  void synchronize() override;

  uint64_t vmm_granularity() const override { return granularity_; }
  void* reserve_range(uint64_t bytes) override;
  void release_range(void* base, uint64_t bytes) override;
  GranuleId create_granule(uint64_t bytes) override;
  void release_granule(GranuleId granule) override;
  void map(void* addr, GranuleId granule) override;
  void set_access(void* addr, uint64_t bytes) override;
  void unmap(void* addr, uint64_t bytes) override;

  // Test hooks: the granule mapped at exactly addr (0: none), whether every
  // byte of [addr, addr + bytes) is mapped with access set, and counts.
  GranuleId granule_mapped_at(uint64_t addr) const;
  bool accessible(uint64_t addr, uint64_t bytes) const;
  size_t live_granules() const { return granules_.size(); }
  size_t mappings() const { return mappings_.size(); }
  size_t reserved_ranges() const { return ranges_.size(); }

  // Test hooks: while a stream is held, events recorded on it stay pending
  // until complete_stream() (or synchronize()) runs.
  void hold_stream(StreamId stream);
  void complete_stream(StreamId stream);

  // Each device hands out addresses from its own window of this many bytes;
  // an unlimited device that fills it reports out of memory.
  static constexpr uint64_t kWindow = uint64_t(1) << 48;
  uint64_t window_base() const { return (uint64_t(device_) + 1) * kWindow; }

  // Physical bytes held: live segments plus created granules.
  uint64_t used_bytes() const { return used_; }
  size_t live_segments() const { return live_.size(); }

 private:
  static constexpr uint64_t kAlign = 2ull << 20;
  uint64_t take_range(uint64_t bytes);  // 0 when the window is full
  void give_back_range(uint64_t addr, uint64_t bytes);
  bool has_room(uint64_t bytes) const { return capacity_ == 0 || (bytes <= capacity_ && used_ <= capacity_ - bytes); }

  struct Mapping {
    GranuleId granule;
    uint64_t size;
    bool access;
  };
  using Mappings = absl::btree_map<uint64_t, Mapping>;
  void check_aligned(const char* op, uint64_t addr, uint64_t bytes) const;
  // The mappings that tile [addr, addr + bytes) exactly, as [first, last);
  // throws when the range is not whole contiguous mappings.
  std::pair<Mappings::iterator, Mappings::iterator> whole_mappings(const char* op, uint64_t addr, uint64_t bytes);

  int device_;
  uint64_t capacity_;
  uint64_t used_ = 0;
  uint64_t next_addr_;                                   // bump pointer past all ranges
  absl::btree_map<uint64_t, uint64_t> free_by_addr_;     // addr -> size, coalesced
  absl::btree_set<std::pair<uint64_t, uint64_t>> free_by_size_;  // (size, addr)
  PointerMap<uint64_t> live_;  // addr -> size; a hash map: one lookup per segment malloc/free

  uint64_t granularity_;
  absl::btree_map<uint64_t, uint64_t> ranges_;  // reserved virtual ranges: base -> size
  struct Granule {
    uint64_t size;
    uint64_t mapped_at;  // 0: not mapped
  };
  PointerMap<Granule> granules_;  // by id
  GranuleId next_granule_ = 1;
  Mappings mappings_;  // by address

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

// A simulated device: tracks capacity, fake addresses, VMM mappings and stream
// events, and never touches memory. An 80 GiB trace replays on a laptop.
#pragma once

#include <cstdint>

#include "absl/container/btree_map.h"
#include "backend/backend.h"
#include "backend/event_clock.h"
#include "backend/range_allocator.h"
#include "backend/vmm_table.h"
#include "core/pointer_map.h"

namespace hbmalloc {

class SimBackend final : public Backend {
 public:
  static constexpr uint64_t kDefaultGranularity = 2ull << 20;  // as CUDA devices

  // capacity 0 means unlimited; granularity is the VMM granule (a power of two
  // between 4 KiB and 2 MiB).
  SimBackend(int device, uint64_t capacity, uint64_t granularity = kDefaultGranularity);

  std::string_view name() const override { return "sim"; }
  int device() const override { return device_; }
  uint64_t capacity() const override { return capacity_; }
  void* malloc_segment(uint64_t bytes) override;
  void free_segment(void* ptr, uint64_t bytes) override;
  EventId record_event(StreamId stream) override { return clock_.record(stream); }
  bool event_done(EventId event) override { return clock_.done(event); }
  void release_event(EventId event) override { clock_.release(event); }
  void synchronize() override { clock_.synchronize(); }

  uint64_t vmm_granularity() const override { return vmm_.granularity(); }
  void* reserve_range(uint64_t bytes) override;
  void release_range(void* base, uint64_t bytes) override;
  GranuleId create_granule(uint64_t bytes) override;
  void release_granule(GranuleId granule) override;
  void map(void* addr, GranuleId granule) override { vmm_.map(address(addr), granule); }
  void set_access(void* addr, uint64_t bytes) override { vmm_.set_access(address(addr), bytes); }
  void unmap(void* addr, uint64_t bytes) override {
    vmm_.unmap(address(addr), bytes, [](uint64_t, GranuleId) {});
  }

  // A segment at exactly [addr, addr + bytes) (a replay putting segments where
  // the recording had them); nullptr when that range overlaps a live placed
  // segment or this device's own window, or the device is full. Freed as any other.
  void* place_segment(uint64_t addr, uint64_t bytes);

  // Test hooks: while a stream is held, events recorded on it stay pending
  // until complete_stream() (or synchronize()) runs.
  void hold_stream(StreamId stream) { clock_.hold_stream(stream); }
  void complete_stream(StreamId stream) { clock_.complete_stream(stream); }
  // What is mapped where.
  const VmmTable& vmm() const { return vmm_; }
  GranuleId granule_mapped_at(uint64_t addr) const { return vmm_.granule_mapped_at(addr); }
  bool accessible(uint64_t addr, uint64_t bytes) const { return vmm_.accessible(addr, bytes); }
  size_t live_granules() const { return vmm_.granules(); }
  size_t mappings() const { return vmm_.mappings(); }
  size_t reserved_ranges() const { return vmm_.ranges(); }

  // Each device hands out addresses from its own window of this many bytes;
  // an unlimited device that fills it reports out of memory.
  static constexpr uint64_t kWindow = uint64_t(1) << 48;
  uint64_t window_base() const { return (uint64_t(device_) + 1) * kWindow; }

  // Physical bytes held: live segments plus created granules.
  uint64_t used_bytes() const { return used_; }
  size_t live_segments() const { return live_.size(); }

 private:
  static constexpr uint64_t kAlign = 2ull << 20;
  static uint64_t address(void* p) { return reinterpret_cast<uint64_t>(p); }
  bool has_room(uint64_t bytes) const { return capacity_ == 0 || (bytes <= capacity_ && used_ <= capacity_ - bytes); }
  // Fake addresses, 2 MiB aligned, 0 when the window is full.
  uint64_t take_range(uint64_t bytes);

  int device_;
  uint64_t capacity_;
  uint64_t used_ = 0;
  RangeAllocator addresses_;   // segments and reserved ranges share one window
  PointerMap<uint64_t> live_;  // addr -> size; a hash map: one lookup per segment malloc/free
  absl::btree_map<uint64_t, uint64_t> placed_;  // addr -> size of the live placed segments
  VmmTable vmm_;
  EventClock clock_{"sim"};
};

}  // namespace hbmalloc

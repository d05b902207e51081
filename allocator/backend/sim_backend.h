// A simulated device: tracks capacity, fake addresses, VMM mappings and stream
// events, and never touches memory. An 80 GiB trace replays on a laptop.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/container/btree_map.h"
#include "backend/emulated_backend.h"
#include "backend/range_allocator.h"
#include "backend/vmm_table.h"
#include "core/pointer_map.h"

namespace hbmalloc {

class SimBackend final : public EmulatedBackend {
 public:
  static constexpr uint64_t kDefaultGranularity = 2ull << 20;  // as CUDA devices

  // capacity 0 means unlimited; granularity is the VMM granule (a power of two
  // between 4 KiB and 2 MiB). Checked: every VMM call is checked against the
  // contract and mappings are tracked (tests); unchecked: accounting only,
  // capacity and granule sizes (replays, where a granule is made per 2 MiB).
  SimBackend(int device, uint64_t capacity, uint64_t granularity = kDefaultGranularity, bool checked = true);

  std::string_view name() const override { return "sim"; }
  // A replay runs on its trace's clock: each event's time is set before the
  // event (nullopt: the trace has no times, so no time budget can be kept).
  // Until the first call the sim keeps the steady clock.
  void set_trace_time(std::optional<int64_t> us) {
    trace_clock_ = true;
    trace_time_ = us;
  }
  std::optional<int64_t> now_us() const override { return trace_clock_ ? trace_time_ : Backend::now_us(); }
  void* malloc_segment(uint64_t bytes) override;
  void free_segment(void* ptr, uint64_t bytes) override;

  uint64_t vmm_granularity() const override { return vmm_.granularity(); }
  void* reserve_range(uint64_t bytes) override;
  void release_range(void* base, uint64_t bytes) override;
  GranuleId create_granule(uint64_t bytes) override;
  void release_granule(GranuleId granule) override;
  void map(void* addr, GranuleId granule) override {
    if (checked_) vmm_.map(address(addr), granule);
  }
  void set_access(void* addr, uint64_t bytes) override {
    if (checked_) vmm_.set_access(address(addr), bytes);
  }
  void unmap(void* addr, uint64_t bytes) override {
    if (checked_) vmm_.unmap(address(addr), bytes, [](uint64_t, GranuleId) {});
  }
  GranuleRun create_granules(uint64_t bytes, size_t n) override;
  void release_granules(GranuleRun run) override;
  void map_granules(void* addr, GranuleRun run, uint64_t bytes) override {
    if (checked_) Backend::map_granules(addr, run, bytes);
  }

  // A segment at exactly [addr, addr + bytes) (a replay putting segments where
  // the recording had them); nullptr when that range overlaps a live placed
  // segment or this device's own window, or the device is full. Freed as any other.
  void* place_segment(uint64_t addr, uint64_t bytes);

  // What is mapped where (checked backends only).
  bool checked() const { return checked_; }
  const VmmTable& vmm() const { return vmm_; }
  GranuleId granule_mapped_at(uint64_t addr) const { return vmm_.granule_mapped_at(addr); }
  // Within one live plain segment, or mapped and accessible.
  bool accessible(uint64_t addr, uint64_t bytes) const;
  size_t live_granules() const { return vmm_.granules(); }
  size_t mappings() const { return vmm_.mappings(); }
  size_t reserved_ranges() const { return vmm_.ranges(); }

  // Each device hands out addresses from its own window of this many bytes:
  // room for the largest device (kMaxDeviceBytes) twice over, so an unlimited
  // device serves any request; 4097 windows (device 4095's ends the last)
  // still fit in 64 bits.
  static constexpr uint64_t kWindow = uint64_t(1) << 51;
  uint64_t window_base() const { return (uint64_t(device_) + 1) * kWindow; }

  size_t live_segments() const { return live_.size(); }

 private:
  static constexpr uint64_t kAlign = 2ull << 20;
  static uint64_t address(void* p) { return reinterpret_cast<uint64_t>(p); }
  // Fake addresses, 2 MiB aligned, 0 when the window is full.
  uint64_t take_range(uint64_t bytes);

  RangeAllocator addresses_;   // segments and reserved ranges share one window
  PointerMap<uint64_t> live_;  // addr -> size; a hash map: one lookup per segment malloc/free
  // A granule id carries its size in granularity units above kIndexBits, so
  // an unchecked backend can account a release without a table, and a run's
  // ids stay consecutive (the index below counts granules made).
  static constexpr int kIndexBits = 40;
  static constexpr uint64_t kIndexMask = (uint64_t(1) << kIndexBits) - 1;
  bool checked_;
  uint64_t granules_made_ = 0;
  absl::btree_map<uint64_t, uint64_t> placed_;  // addr -> size of the live placed segments
  absl::btree_map<uint64_t, uint64_t> checked_segments_;  // checked backends: addr -> size of every live segment
  VmmTable vmm_;
  bool trace_clock_ = false;
  std::optional<int64_t> trace_time_;
};

// The sim device `config` describes, for replays and the sim backend: its
// granule follows the configured one (2 MiB at most, as a GPU's), and its VMM
// is accounting only (a replay maps a granule per 2 MiB and must stay fast).
std::unique_ptr<SimBackend> make_sim_backend(const Config& config, int device);

}  // namespace hbmalloc

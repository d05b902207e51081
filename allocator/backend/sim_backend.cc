#include "backend/sim_backend.h"

#include <algorithm>
#include <string>

#include "core/helpers.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {

uint64_t checked_granularity(uint64_t granularity) {
  if (granularity < 4096 || (granularity & (granularity - 1)) != 0 || granularity > (2ull << 20))
    throw Error(ErrorCode::kInvalidArgument, "sim: VMM granularity " + std::to_string(granularity) +
                                                 " is not a power of two between 4 KiB and 2 MiB");
  return granularity;
}
}  // namespace

// Each device gets its own window so addresses never collide across devices,
// and no address is 0.
SimBackend::SimBackend(int device, uint64_t capacity, uint64_t granularity, bool checked)
    : EmulatedBackend(device, capacity),
      addresses_((uint64_t(device) + 1) * kWindow, kWindow),
      checked_(checked),
      vmm_("sim", checked_granularity(granularity)) {
  if (device < 0 || device >= 4096) throw Error(ErrorCode::kInvalidArgument, "sim: device index out of range");
  if (capacity > kMaxDeviceBytes)
    throw Error(ErrorCode::kInvalidArgument, "sim: capacity " + std::to_string(capacity) +
                                                 " is more than the largest device hbmalloc models (1 PiB)");
}

uint64_t SimBackend::take_range(uint64_t bytes) {
  uint64_t addr = addresses_.take(round_up(bytes, kAlign));
  return addr == RangeAllocator::kNone ? 0 : addr;
}

void* SimBackend::malloc_segment(uint64_t bytes) {
  if (bytes == 0) throw Error(ErrorCode::kInvalidArgument, "sim: zero-byte segment");
  if (bytes > kWindow) return nullptr;
  if (!has_room(bytes)) return nullptr;
  uint64_t addr = take_range(bytes);
  if (addr == 0) return nullptr;
  live_.insert(addr, bytes);
  used_ += bytes;
  if (checked_) checked_segments_.emplace(addr, bytes);
  return reinterpret_cast<void*>(addr);
}

bool SimBackend::accessible(uint64_t addr, uint64_t bytes) const {
  auto it = checked_segments_.upper_bound(addr);
  if (it != checked_segments_.begin()) {
    --it;
    if (addr - it->first < it->second && bytes <= it->second - (addr - it->first)) return true;
  }
  return vmm_.accessible(addr, bytes);
}

void* SimBackend::place_segment(uint64_t addr, uint64_t bytes) {
  if (bytes == 0) throw Error(ErrorCode::kInvalidArgument, "sim: zero-byte segment");
  if (addr == 0 || bytes > UINT64_MAX - addr || !has_room(bytes)) return nullptr;
  const uint64_t end = addr + bytes;
  if (addr < window_base() + kWindow && end > window_base()) return nullptr;
  auto next = placed_.lower_bound(addr);
  if (next != placed_.end() && next->first < end) return nullptr;
  if (next != placed_.begin() && std::prev(next)->first + std::prev(next)->second > addr) return nullptr;
  placed_.emplace_hint(next, addr, bytes);
  live_.insert(addr, bytes);
  used_ += bytes;
  if (checked_) checked_segments_.emplace(addr, bytes);
  return reinterpret_cast<void*>(addr);
}

void SimBackend::free_segment(void* ptr, uint64_t bytes) {
  uint64_t addr = address(ptr);
  uint64_t* live = addr == 0 ? nullptr : live_.find(addr);  // the map's keys are never 0
  if (live == nullptr || *live != bytes)
    throw Error(ErrorCode::kBackend, "sim: free of a segment that is not live (" + std::to_string(addr) + ")");
  complete_work_before_free();
  live_.erase_found(live);
  used_ -= bytes;
  if (checked_) checked_segments_.erase(addr);
  if (!placed_.empty() && placed_.erase(addr) == 1) return;  // placed ranges never join the window's
  addresses_.give_back(addr, round_up(bytes, kAlign));
}

void* SimBackend::reserve_range(uint64_t bytes) {
  vmm_.check_size("reserve_range", bytes);
  if (bytes > kWindow) return nullptr;
  uint64_t addr = take_range(bytes);
  if (addr == 0) return nullptr;
  vmm_.add_range(addr, bytes);
  return reinterpret_cast<void*>(addr);
}

void SimBackend::release_range(void* base, uint64_t bytes) {
  vmm_.remove_range(address(base), bytes);
  addresses_.give_back(address(base), round_up(bytes, kAlign));
}

GranuleId SimBackend::create_granule(uint64_t bytes) { return create_granules(bytes, 1).first; }

GranuleRun SimBackend::create_granules(uint64_t bytes, size_t n) {
  vmm_.check_size("create_granule", bytes);
  const uint64_t units = bytes / vmm_.granularity();
  if (units >> (64 - kIndexBits) != 0)
    throw Error(ErrorCode::kInvalidArgument, "sim: create_granule: " + std::to_string(bytes) + " bytes is too large");
  const uint64_t room = capacity_ == 0 ? n : (used_ >= capacity_ ? 0 : (capacity_ - used_) / bytes);
  const size_t made = size_t(std::min<uint64_t>(n, room));
  if (made == 0) return {};
  if (made > kIndexMask - granules_made_)
    throw Error(ErrorCode::kBackend, "sim: create_granule: more than 2^40 granules made over the device's life");
  const GranuleRun run{(units << kIndexBits) | (granules_made_ + 1), made};
  granules_made_ += made;
  used_ += made * bytes;
  if (checked_)
    for (uint64_t i = 0; i < made; ++i) vmm_.add_granule(bytes, 0, run.first + i);
  return run;
}

void SimBackend::release_granule(GranuleId granule) { release_granules({granule, 1}); }

void SimBackend::release_granules(GranuleRun run) {
  if (checked_)
    for (uint64_t i = 0; i < run.count; ++i) vmm_.remove_granule(run.first + i);
  // Unchecked: accounting only, the size carried in the ids (one run, one size).
  used_ -= run.count * (run.first >> kIndexBits) * vmm_.granularity();
}

}  // namespace hbmalloc

#include "backend/sim_backend.h"

#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {
uint64_t round_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }
}  // namespace

// Each device gets its own window so addresses never collide across devices,
// and no address is 0.
SimBackend::SimBackend(int device, uint64_t capacity)
    : device_(device), capacity_(capacity), next_addr_(window_base()) {
  if (device < 0 || device >= 4096) throw Error(ErrorCode::kInvalidArgument, "sim: device index out of range");
}

uint64_t SimBackend::take_range(uint64_t bytes) {
  auto it = free_by_size_.lower_bound({bytes, 0});
  if (it == free_by_size_.end()) {
    if (bytes > window_base() + kWindow - next_addr_) return 0;
    uint64_t addr = next_addr_;
    next_addr_ += bytes;
    return addr;
  }
  auto [size, addr] = *it;
  free_by_size_.erase(it);
  free_by_addr_.erase(addr);
  if (size > bytes) {
    free_by_addr_[addr + bytes] = size - bytes;
    free_by_size_.insert({size - bytes, addr + bytes});
  }
  return addr;
}

void SimBackend::give_back_range(uint64_t addr, uint64_t bytes) {
  auto next = free_by_addr_.lower_bound(addr);
  if (next != free_by_addr_.end() && next->first == addr + bytes) {
    bytes += next->second;
    free_by_size_.erase({next->second, next->first});
    next = free_by_addr_.erase(next);
  }
  if (next != free_by_addr_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == addr) {
      free_by_size_.erase({prev->second, prev->first});
      addr = prev->first;
      bytes += prev->second;
      free_by_addr_.erase(prev);
    }
  }
  if (addr + bytes == next_addr_) {  // the top of the window shrinks back
    next_addr_ = addr;
    return;
  }
  free_by_addr_[addr] = bytes;
  free_by_size_.insert({bytes, addr});
}

void* SimBackend::malloc_segment(uint64_t bytes) {
  if (bytes == 0) throw Error(ErrorCode::kInvalidArgument, "sim: zero-byte segment");
  if (bytes > kWindow) return nullptr;
  if (capacity_ != 0 && (bytes > capacity_ || used_ > capacity_ - bytes)) return nullptr;
  uint64_t addr = take_range(round_up(bytes, kAlign));
  if (addr == 0) return nullptr;
  live_.insert(addr, bytes);
  used_ += bytes;
  return reinterpret_cast<void*>(addr);
}

void* SimBackend::place_segment(uint64_t addr, uint64_t bytes) {
  if (bytes == 0) throw Error(ErrorCode::kInvalidArgument, "sim: zero-byte segment");
  if (addr == 0 || bytes > UINT64_MAX - addr) return nullptr;
  if (capacity_ != 0 && (bytes > capacity_ || used_ > capacity_ - bytes)) return nullptr;
  const uint64_t end = addr + bytes, window_end = window_base() + kWindow;
  if (addr < window_end && end > window_base()) return nullptr;
  auto next = placed_.lower_bound(addr);
  if (next != placed_.end() && next->first < end) return nullptr;
  if (next != placed_.begin() && std::prev(next)->first + std::prev(next)->second > addr) return nullptr;
  placed_.emplace_hint(next, addr, bytes);
  live_.insert(addr, bytes);
  used_ += bytes;
  return reinterpret_cast<void*>(addr);
}

void SimBackend::free_segment(void* ptr, uint64_t bytes) {
  uint64_t addr = reinterpret_cast<uint64_t>(ptr);
  uint64_t* live = addr == 0 ? nullptr : live_.find(addr);  // the map's keys are never 0
  if (live == nullptr || *live != bytes)
    throw Error(ErrorCode::kBackend, "sim: free of a segment that is not live (" + std::to_string(addr) + ")");
  live_.erase_found(live);
  if (!placed_.empty() && placed_.erase(addr) == 1) {  // placed ranges never join the window's
    used_ -= bytes;
    return;
  }
  give_back_range(addr, round_up(bytes, kAlign));
  used_ -= bytes;
}

EventId SimBackend::record_event(StreamId stream) {
  StreamClock& clock = clocks_[stream];
  uint64_t seq = ++clock.recorded;
  if (!clock.held) clock.completed = seq;
  EventId id = next_event_++;
  events_[id] = {stream, seq};
  return id;
}

bool SimBackend::event_done(EventId event) {
  auto it = events_.find(event);
  if (it == events_.end()) throw Error(ErrorCode::kBackend, "sim: unknown event");
  return it->second.seq <= clocks_[it->second.stream].completed;
}

void SimBackend::release_event(EventId event) { events_.erase(event); }

void SimBackend::synchronize() {
  for (auto& [stream, clock] : clocks_) clock.completed = clock.recorded;
}

void SimBackend::hold_stream(StreamId stream) { clocks_[stream].held = true; }

void SimBackend::complete_stream(StreamId stream) {
  StreamClock& clock = clocks_[stream];
  clock.completed = clock.recorded;
  clock.held = false;
}

}  // namespace hbmalloc

#include "backend/sim_backend.h"

#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {
uint64_t round_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }
}  // namespace

// Each device gets its own window so addresses never collide across devices,
// and no address is 0.
SimBackend::SimBackend(int device, uint64_t capacity, uint64_t granularity)
    : device_(device), capacity_(capacity), next_addr_(window_base()), granularity_(granularity) {
  if (device < 0 || device >= 4096) throw Error(ErrorCode::kInvalidArgument, "sim: device index out of range");
  if (granularity < 4096 || (granularity & (granularity - 1)) != 0 || granularity > kAlign)
    throw Error(ErrorCode::kInvalidArgument, "sim: VMM granularity " + std::to_string(granularity) +
                                                 " is not a power of two between 4 KiB and 2 MiB");
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
  if (!has_room(bytes)) return nullptr;
  uint64_t addr = take_range(round_up(bytes, kAlign));
  if (addr == 0) return nullptr;
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
  give_back_range(addr, round_up(bytes, kAlign));
  used_ -= bytes;
}

namespace {
[[noreturn]] void misuse(const char* op, const std::string& why) {
  throw Error(ErrorCode::kBackend, std::string("sim: ") + op + ": " + why);
}
}  // namespace

void SimBackend::check_aligned(const char* op, uint64_t addr, uint64_t bytes) const {
  if (bytes == 0 || addr % granularity_ != 0 || bytes % granularity_ != 0)
    misuse(op, "address " + std::to_string(addr) + " or size " + std::to_string(bytes) +
                   " is zero or not a multiple of the granularity " + std::to_string(granularity_));
}

void* SimBackend::reserve_range(uint64_t bytes) {
  check_aligned("reserve_range", 0, bytes);
  if (bytes > kWindow) return nullptr;
  // Ranges come from the same window as segments (2 MiB aligned), so the two never overlap.
  uint64_t addr = take_range(round_up(bytes, kAlign));
  if (addr == 0) return nullptr;
  ranges_.emplace(addr, bytes);
  return reinterpret_cast<void*>(addr);
}

void SimBackend::release_range(void* base, uint64_t bytes) {
  uint64_t addr = reinterpret_cast<uint64_t>(base);
  auto it = ranges_.find(addr);
  if (it == ranges_.end() || it->second != bytes)
    misuse("release_range", "no reserved range of " + std::to_string(bytes) + " bytes at " + std::to_string(addr));
  auto m = mappings_.lower_bound(addr);
  if (m != mappings_.end() && m->first < addr + bytes)
    misuse("release_range", "the range still has a mapping at " + std::to_string(m->first));
  ranges_.erase(it);
  give_back_range(addr, round_up(bytes, kAlign));
}

GranuleId SimBackend::create_granule(uint64_t bytes) {
  check_aligned("create_granule", 0, bytes);
  if (!has_room(bytes)) return 0;
  GranuleId id = next_granule_++;
  granules_.insert(id, Granule{bytes, 0});
  used_ += bytes;
  return id;
}

void SimBackend::release_granule(GranuleId granule) {
  Granule* g = granule == 0 ? nullptr : granules_.find(granule);
  if (g == nullptr) misuse("release_granule", "unknown granule " + std::to_string(granule));
  if (g->mapped_at != 0) misuse("release_granule", "granule still mapped at " + std::to_string(g->mapped_at));
  used_ -= g->size;
  granules_.erase_found(g);
}

void SimBackend::map(void* where, GranuleId granule) {
  uint64_t addr = reinterpret_cast<uint64_t>(where);
  Granule* g = granule == 0 ? nullptr : granules_.find(granule);
  if (g == nullptr) misuse("map", "unknown granule " + std::to_string(granule));
  if (g->mapped_at != 0) misuse("map", "granule already mapped at " + std::to_string(g->mapped_at));
  check_aligned("map", addr, g->size);
  auto range = ranges_.upper_bound(addr);
  if (range == ranges_.begin() || addr + g->size > std::prev(range)->first + std::prev(range)->second)
    misuse("map", "[" + std::to_string(addr) + ", +" + std::to_string(g->size) + ") is not inside a reserved range");
  auto next = mappings_.lower_bound(addr);
  bool overlaps = next != mappings_.end() && next->first < addr + g->size;
  if (next != mappings_.begin()) {
    auto prev = std::prev(next);
    overlaps = overlaps || prev->first + prev->second.size > addr;
  }
  if (overlaps) misuse("map", "address " + std::to_string(addr) + " is already mapped");
  mappings_.emplace_hint(next, addr, Mapping{granule, g->size, false});
  g->mapped_at = addr;
}

std::pair<SimBackend::Mappings::iterator, SimBackend::Mappings::iterator> SimBackend::whole_mappings(
    const char* op, uint64_t addr, uint64_t bytes) {
  check_aligned(op, addr, bytes);
  auto first = mappings_.find(addr);
  if (first == mappings_.end()) misuse(op, "no mapping starts at " + std::to_string(addr));
  auto it = first;
  uint64_t cursor = addr;
  while (cursor < addr + bytes) {
    if (it == mappings_.end() || it->first != cursor)
      misuse(op, "[" + std::to_string(addr) + ", +" + std::to_string(bytes) + ") is not mapped at " +
                     std::to_string(cursor));
    cursor += it->second.size;
    ++it;
  }
  if (cursor != addr + bytes)
    misuse(op, "[" + std::to_string(addr) + ", +" + std::to_string(bytes) + ") ends inside a granule");
  return {first, it};
}

void SimBackend::set_access(void* addr, uint64_t bytes) {
  auto [first, last] = whole_mappings("set_access", reinterpret_cast<uint64_t>(addr), bytes);
  for (auto it = first; it != last; ++it) it->second.access = true;
}

void SimBackend::unmap(void* addr, uint64_t bytes) {
  auto [first, last] = whole_mappings("unmap", reinterpret_cast<uint64_t>(addr), bytes);
  for (auto it = first; it != last; ++it) granules_.find(it->second.granule)->mapped_at = 0;
  mappings_.erase(first, last);
}

GranuleId SimBackend::granule_mapped_at(uint64_t addr) const {
  auto it = mappings_.find(addr);
  return it == mappings_.end() ? 0 : it->second.granule;
}

bool SimBackend::accessible(uint64_t addr, uint64_t bytes) const {
  uint64_t cursor = addr;
  auto it = mappings_.upper_bound(addr);
  if (it == mappings_.begin()) return false;
  --it;
  while (cursor < addr + bytes) {
    if (it == mappings_.end() || it->first > cursor || it->first + it->second.size <= cursor || !it->second.access)
      return false;
    cursor = it->first + it->second.size;
    ++it;
  }
  return true;
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

// A sim backend that hands out segments where the recording had them: the
// n-th new segment of a size goes to the address of the recording's n-th
// segment of that size (its segments at trace start first, in address
// order, then its segment_alloc events), when that range is free; otherwise
// to an address of the sim's own. Best fit breaks ties by address, so a
// faithful policy (cca) needs the recording's addresses to choose as the
// recording did.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>

#include "backend/sim_backend.h"

namespace hbmalloc::replay {

class RecordedAddresses final : public Backend {
 public:
  explicit RecordedAddresses(std::unique_ptr<SimBackend> sim) : sim_(std::move(sim)) {}

  // The recording's next segment of `bytes` was at `addr`.
  void plan(uint64_t addr, uint64_t bytes) { planned_[bytes].push_back(addr); }

  std::string_view name() const override { return sim_->name(); }
  int device() const override { return sim_->device(); }
  uint64_t capacity() const override { return sim_->capacity(); }
  void* malloc_segment(uint64_t bytes) override {
    auto it = planned_.find(bytes);
    while (it != planned_.end() && !it->second.empty()) {
      const uint64_t addr = it->second.front();
      it->second.pop_front();
      if (void* ptr = sim_->place_segment(addr, bytes)) return ptr;  // else that range is still held here
    }
    return sim_->malloc_segment(bytes);
  }
  void free_segment(void* ptr, uint64_t bytes) override { sim_->free_segment(ptr, bytes); }
  EventId record_event(StreamId stream) override { return sim_->record_event(stream); }
  bool event_done(EventId event) override { return sim_->event_done(event); }
  void release_event(EventId event) override { sim_->release_event(event); }
  void synchronize() override { sim_->synchronize(); }
  uint64_t vmm_granularity() const override { return sim_->vmm_granularity(); }
  void* reserve_range(uint64_t bytes) override { return sim_->reserve_range(bytes); }
  void release_range(void* base, uint64_t bytes) override { sim_->release_range(base, bytes); }
  GranuleId create_granule(uint64_t bytes) override { return sim_->create_granule(bytes); }
  void release_granule(GranuleId granule) override { sim_->release_granule(granule); }
  void map(void* addr, GranuleId granule) override { sim_->map(addr, granule); }
  void set_access(void* addr, uint64_t bytes) override { sim_->set_access(addr, bytes); }
  void unmap(void* addr, uint64_t bytes) override { sim_->unmap(addr, bytes); }

 private:
  std::unique_ptr<SimBackend> sim_;
  std::map<uint64_t, std::deque<uint64_t>> planned_;  // bytes -> addresses, in the recording's order
};

}  // namespace hbmalloc::replay

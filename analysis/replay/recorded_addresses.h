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

#include "backend/forwarding_backend.h"
#include "backend/sim_backend.h"

namespace hbmalloc::replay {

class RecordedAddresses final : public ForwardingBackend {
 public:
  explicit RecordedAddresses(std::unique_ptr<SimBackend> sim)
      : ForwardingBackend(std::move(sim)), sim_(static_cast<SimBackend*>(&inner())) {}

  // The recording's next segment of `bytes` was at `addr`.
  void plan(uint64_t addr, uint64_t bytes) { planned_[bytes].push_back(addr); }

  void* malloc_segment(uint64_t bytes) override {
    auto it = planned_.find(bytes);
    while (it != planned_.end() && !it->second.empty()) {
      const uint64_t addr = it->second.front();
      it->second.pop_front();
      if (void* ptr = sim_->place_segment(addr, bytes)) return ptr;  // else that range is still held here
    }
    return sim_->malloc_segment(bytes);
  }

 private:
  SimBackend* sim_;  // the wrapped backend
  std::map<uint64_t, std::deque<uint64_t>> planned_;  // bytes -> addresses, in the recording's order
};

}  // namespace hbmalloc::replay

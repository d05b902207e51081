// Building a Trace from a format that names blocks by its own keys (file
// ids, pointers): each alloc takes the device's next dense id, each free
// finds the id its key holds now, and a key may be used again once freed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "record/trace.h"

namespace hbmalloc::trace {

class TraceAssembler {
 public:
  enum class KeyState { kLive, kFreed, kNeverAllocated };

  // The device's trace, created on first use.
  DeviceTrace& device(int64_t number, const std::string& where);

  KeyState key_state(int device, uint64_t key) const;
  // The next dense id, now held by `key` (which must not be live).
  uint32_t allocate(int device, uint64_t key, const std::string& where);
  // The id `key` holds (it must be live).
  uint32_t live_id(int device, uint64_t key) const;
  // Ends the life of live `key`; returns the id it held.
  uint32_t release(int device, uint64_t key);

  // The devices in number order, with block_count set.
  std::vector<DeviceTrace> finish();

 private:
  struct Slot {
    DeviceTrace trace;
    std::unordered_map<uint64_t, uint32_t> live;
    std::unordered_set<uint64_t> freed;
  };
  std::map<int, Slot> devices_;
};

}  // namespace hbmalloc::trace

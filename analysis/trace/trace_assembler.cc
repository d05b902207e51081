#include "trace/trace_assembler.h"

#include "hbmalloc/error.hpp"

namespace hbmalloc::trace {

DeviceTrace& TraceAssembler::device(int64_t number, const std::string& where) {
  int d = checked_device(number, where);
  Slot& slot = devices_[d];
  slot.trace.device = d;
  return slot.trace;
}

TraceAssembler::KeyState TraceAssembler::key_state(int device, uint64_t key) const {
  auto it = devices_.find(device);
  if (it == devices_.end()) return KeyState::kNeverAllocated;
  if (it->second.live.count(key) != 0) return KeyState::kLive;
  return it->second.freed.count(key) != 0 ? KeyState::kFreed : KeyState::kNeverAllocated;
}

uint32_t TraceAssembler::allocate(int device, uint64_t key, const std::string& where) {
  Slot& slot = devices_[device];
  slot.trace.device = device;
  // Ids are uint32 with kNoBlock reserved.
  if (slot.trace.block_count == kNoBlock)
    throw Error(ErrorCode::kInvalidArgument, where + ": more than " + std::to_string(kNoBlock) +
                                                 " blocks on device " + std::to_string(device));
  uint32_t id = slot.trace.block_count++;
  slot.live.emplace(key, id);
  slot.freed.erase(key);
  return id;
}

uint32_t TraceAssembler::live_id(int device, uint64_t key) const {
  return devices_.at(device).live.at(key);
}

uint32_t TraceAssembler::release(int device, uint64_t key) {
  Slot& slot = devices_.at(device);
  auto it = slot.live.find(key);
  uint32_t id = it->second;
  slot.live.erase(it);
  slot.freed.insert(key);
  return id;
}

std::vector<DeviceTrace> TraceAssembler::finish() {
  std::vector<DeviceTrace> out;
  out.reserve(devices_.size());
  for (auto& [number, slot] : devices_) out.push_back(std::move(slot.trace));
  devices_.clear();
  return out;
}

}  // namespace hbmalloc::trace

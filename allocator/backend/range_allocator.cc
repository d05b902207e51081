#include "backend/range_allocator.h"

#include <iterator>

namespace hbmalloc {

uint64_t RangeAllocator::take(uint64_t bytes) {
  auto it = free_by_size_.lower_bound({bytes, 0});
  if (it == free_by_size_.end()) {
    if (bytes > end_ - top_) return kNone;
    uint64_t addr = top_;
    top_ += bytes;
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

void RangeAllocator::give_back(uint64_t addr, uint64_t bytes) {
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
  if (addr + bytes == top_) {  // the top shrinks back
    top_ = addr;
    return;
  }
  free_by_addr_[addr] = bytes;
  free_by_size_.insert({bytes, addr});
}

}  // namespace hbmalloc

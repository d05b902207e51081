// Stable-address storage for policy nodes (blocks, slabs): no raw new/delete
// in policy code, and freed nodes are recycled without touching the heap.
#pragma once

#include <deque>
#include <utility>
#include <vector>

namespace hbmalloc {

template <typename T>
class ObjectPool {
 public:
  template <typename... Args>
  T* make(Args&&... args) {
    if (!free_.empty()) {
      T* t = free_.back();
      free_.pop_back();
      *t = T{std::forward<Args>(args)...};
      return t;
    }
    return &items_.emplace_back(T{std::forward<Args>(args)...});
  }
  void recycle(T* t) { free_.push_back(t); }

 private:
  std::deque<T> items_;  // deque: growing never moves existing nodes
  std::vector<T*> free_;
};

}  // namespace hbmalloc

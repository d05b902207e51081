// State kept per stream for the few streams a job uses: stable addresses,
// and the stream asked for last answered without a lookup, since consecutive
// calls nearly always come from the same stream.
#pragma once

#include <cstddef>
#include <memory>

#include "absl/container/btree_map.h"
#include "hbmalloc/types.hpp"

namespace hbmalloc {

template <typename T>
class PerStream {
 public:
  // The stream's state, made (value-initialized, then init(state)) on first use.
  template <typename Init>
  T& of(StreamId stream, Init&& init) {
    if (last_ != nullptr && last_stream_ == stream) [[likely]]
      return *last_;
    return look_up(stream, init);
  }
  T& of(StreamId stream) {
    return of(stream, [](T&) {});
  }
  // The stream's state, or nullptr when it has none yet.
  T* find(StreamId stream) const {
    auto it = map_.find(stream);
    return it == map_.end() ? nullptr : it->second.get();
  }
  size_t size() const { return map_.size(); }
  // Whether no stream but `stream` has state.
  bool only(StreamId stream) const { return map_.size() <= 1 && (last_ == nullptr || last_stream_ == stream); }

  // (stream, std::unique_ptr<T>) pairs in stream order.
  auto begin() { return map_.begin(); }
  auto end() { return map_.end(); }
  auto begin() const { return map_.begin(); }
  auto end() const { return map_.end(); }

 private:
  template <typename Init>
  [[gnu::noinline]] T& look_up(StreamId stream, Init& init) {
    std::unique_ptr<T>& slot = map_[stream];
    if (!slot) {
      slot = std::make_unique<T>();
      init(*slot);
    }
    last_stream_ = stream;
    last_ = slot.get();
    return *last_;
  }

  absl::btree_map<StreamId, std::unique_ptr<T>> map_;
  StreamId last_stream_ = 0;
  T* last_ = nullptr;  // the state of last_stream_ (with one stream in map_, that one)
};

}  // namespace hbmalloc

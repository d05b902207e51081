// The large pool's free blocks (and, with VMM, its unmapped gaps), per
// stream, in best-fit order: by size, then by address. Best fit is the first
// block of at least the requested size.
//
// One small index per stream (not one keyed by stream first): the stream
// drops out of every comparison and consecutive requests nearly always come
// from the same stream. Entries carry size and address so a search never
// dereferences a Block (a cache miss each), and nodes are searched linearly:
// with ~10 entries a node, predictable branches beat a binary search's
// mispredictions (measured: ~5% of replay time).
#pragma once

#include <cstdint>
#include <iterator>
#include <memory>
#include <type_traits>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "policy/hbm/block.h"

namespace hbmalloc {

class FreeIndex {
 public:
  // Takes the best fit for `size` out of the index; nullptr when the stream
  // has no free block that large.
  Block* take_best_fit(StreamId stream, uint64_t size) {
    Blocks& blocks = of(stream);
    auto it = blocks.lower_bound(Entry{size, 0, nullptr});
    if (it == blocks.end()) return nullptr;
    Block* b = it->block;
    blocks.erase(it);
    return b;
  }
  // b's size, address and stream must not change while it is indexed.
  void insert(Block* b) { of(b->stream).insert(entry_of(b)); }
  void erase(const Block* b) { of(b->stream).erase(entry_of(b)); }

  bool contains(const Block* b) const {
    auto s = streams_.find(b->stream);
    if (s == streams_.end()) return false;
    auto it = s->second->find(entry_of(b));
    return it != s->second->end() && it->block == b;
  }
  size_t size() const {
    size_t n = 0;
    for (const auto& [stream, blocks] : streams_) n += blocks->size();
    return n;
  }
  uint64_t largest() const {
    uint64_t largest = 0;
    for (const auto& [stream, blocks] : streams_)
      if (!blocks->empty() && std::prev(blocks->end())->size > largest) largest = std::prev(blocks->end())->size;
    return largest;
  }
  // Calls f(size, addr, block) for the stream's blocks, smallest first.
  template <typename F>
  void for_each(StreamId stream, F&& f) const {
    auto s = streams_.find(stream);
    if (s == streams_.end()) return;
    for (const Entry& e : *s->second) f(e.size, e.addr, e.block);
  }
  // Calls f(size, addr, block) for every stream's blocks, largest first
  // within a stream, the given stream first. f says how to go on.
  enum Walk { kGoOn, kNextStream, kStop };
  template <typename F>
  void for_each_largest_first(StreamId first, F&& f) const {
    auto walk = [&](const Blocks& blocks) {
      for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
        Walk w = f(it->size, it->addr, it->block);
        if (w != kGoOn) return w;
      }
      return kNextStream;
    };
    if (auto s = streams_.find(first); s != streams_.end() && walk(*s->second) == kStop) return;
    for (const auto& [stream, blocks] : streams_)
      if (stream != first && walk(*blocks) == kStop) return;
  }

 private:
  struct Entry {
    uint64_t size;
    uintptr_t addr;
    Block* block;
  };
  struct BySizeThenAddr {
    using absl_btree_prefer_linear_node_search = std::true_type;
    bool operator()(const Entry& a, const Entry& b) const {
      return a.size < b.size || (a.size == b.size && a.addr < b.addr);
    }
  };
  using Blocks = absl::btree_set<Entry, BySizeThenAddr>;
  static Entry entry_of(const Block* b) { return {b->size, b->addr, const_cast<Block*>(b)}; }

  Blocks& of(StreamId stream) {
    if (last_ != nullptr && last_stream_ == stream) [[likely]]
      return *last_;
    std::unique_ptr<Blocks>& slot = streams_[stream];
    if (!slot) slot = std::make_unique<Blocks>();
    last_stream_ = stream;
    last_ = slot.get();
    return *last_;
  }

  absl::btree_map<StreamId, std::unique_ptr<Blocks>> streams_;  // few streams; stable addresses
  StreamId last_stream_ = 0;
  Blocks* last_ = nullptr;
};

}  // namespace hbmalloc

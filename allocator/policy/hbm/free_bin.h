// One bin of the large pool's free index: free blocks ordered by (size,
// address). A short bin is a sorted vector, largest first, so the smallest
// block is at the back and shifting a few entries beats walking a tree's
// nodes. A bin that grows past kFlatLimit entries (thousands of equal blocks
// freed together) moves to an ordered tree, so no bin costs more than
// O(log n) per operation; it returns to a vector once it empties.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "absl/container/btree_set.h"
#include "policy/hbm/block.h"

namespace hbmalloc::hbm {

class FreeBin {
 public:
  static constexpr size_t kFlatLimit = 256;

  struct Entry {
    uint64_t size;
    uintptr_t addr;
    Block* block;
  };
  static Entry entry_of(const Block* b) { return {b->size, b->addr, const_cast<Block*>(b)}; }

  bool empty() const { return tree_ ? tree_->empty() : flat_.empty(); }
  size_t size() const { return tree_ ? tree_->size() : flat_.size(); }

  // Takes the smallest block of at least `size` (lowest address among
  // equals); nullptr when none is that large.
  Block* take_fit(uint64_t size) {
    if (tree_) [[unlikely]] {
      auto it = tree_->lower_bound(Entry{size, 0, nullptr});
      return it == tree_->end() ? nullptr : take_from_tree(it);
    }
    // Entries of at least `size` form a prefix; its last entry is the best fit.
    auto end = std::partition_point(flat_.begin(), flat_.end(), [size](const Entry& e) { return e.size >= size; });
    if (end == flat_.begin()) return nullptr;
    Block* b = std::prev(end)->block;
    flat_.erase(std::prev(end));
    return b;
  }
  // The block take_fit would take, left in the bin.
  const Block* fit(uint64_t size) const {
    if (tree_) [[unlikely]] {
      auto it = tree_->lower_bound(Entry{size, 0, nullptr});
      return it == tree_->end() ? nullptr : it->block;
    }
    auto end = std::partition_point(flat_.begin(), flat_.end(), [size](const Entry& e) { return e.size >= size; });
    return end == flat_.begin() ? nullptr : std::prev(end)->block;
  }
  // The smallest block, left in the bin; the bin must not be empty.
  const Block* smallest() const { return tree_ ? tree_->begin()->block : flat_.back().block; }
  // Takes the smallest block; the bin must not be empty.
  Block* take_smallest() {
    if (tree_) [[unlikely]]
      return take_from_tree(tree_->begin());
    Block* b = flat_.back().block;
    flat_.pop_back();
    return b;
  }
  void insert(const Block* block) {
    Entry e = entry_of(block);
    if (tree_) [[unlikely]] {
      tree_->insert(e);
      return;
    }
    flat_.insert(std::upper_bound(flat_.begin(), flat_.end(), e, LargestFirst{}), e);
    if (flat_.size() > kFlatLimit) [[unlikely]] {
      tree_ = std::make_unique<Tree>(flat_.begin(), flat_.end());
      flat_ = {};
    }
  }
  // Whether `block` was here (and is now gone).
  bool erase(const Block* block) {
    Entry e = entry_of(block);
    if (tree_) [[unlikely]] {
      auto it = tree_->find(e);
      if (it == tree_->end() || it->block != block) return false;
      take_from_tree(it);
      return true;
    }
    auto it = std::lower_bound(flat_.begin(), flat_.end(), e, LargestFirst{});
    if (it == flat_.end() || it->block != block) return false;
    flat_.erase(it);
    return true;
  }
  bool contains(const Block* block) const {
    Entry e = entry_of(block);
    if (tree_) {
      auto it = tree_->find(e);
      return it != tree_->end() && it->block == block;
    }
    auto it = std::lower_bound(flat_.begin(), flat_.end(), e, LargestFirst{});
    return it != flat_.end() && it->block == block;
  }
  uint64_t largest() const {
    if (tree_) return tree_->empty() ? 0 : std::prev(tree_->end())->size;
    return flat_.empty() ? 0 : flat_.front().size;
  }
  // Calls f(entry) for each entry, in some order.
  template <typename F>
  void for_each(F&& f) const {
    if (tree_) std::for_each(tree_->begin(), tree_->end(), f);
    else std::for_each(flat_.begin(), flat_.end(), f);
  }
  bool ordered() const { return tree_ != nullptr || std::is_sorted(flat_.begin(), flat_.end(), LargestFirst{}); }

 private:
  struct LargestFirst {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.size > b.size || (a.size == b.size && a.addr > b.addr);
    }
  };
  struct SmallestFirst {
    using absl_btree_prefer_linear_node_search = std::true_type;
    bool operator()(const Entry& a, const Entry& b) const {
      return a.size < b.size || (a.size == b.size && a.addr < b.addr);
    }
  };
  using Tree = absl::btree_set<Entry, SmallestFirst>;

  Block* take_from_tree(Tree::iterator it) {
    Block* b = it->block;
    tree_->erase(it);
    if (tree_->empty()) tree_.reset();
    return b;
  }

  std::vector<Entry> flat_;     // largest first, while the bin is short
  std::unique_ptr<Tree> tree_;  // instead of flat_, past kFlatLimit entries
};

}  // namespace hbmalloc::hbm

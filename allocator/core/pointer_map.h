// Open-addressing map from a non-zero address to a small value: the live
// pointer table on the allocation fast path.
//
// Why not absl::flat_hash_map: Debian's Abseil archives use the local-exec TLS
// model, so they cannot be linked into a shared object, and libhbmalloc.so must
// not depend on Abseil's shared libraries. Linear probing with Fibonacci
// hashing and backward-shift deletion (no tombstones) keeps probes short for
// the 512-byte-aligned keys an allocator sees.
#pragma once

#include <cstddef>  // offsetof
#include <cstdint>
#include <utility>
#include <vector>

namespace hbmalloc {

template <typename V>
class PointerMap {
 public:
  PointerMap() { rehash(64); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // nullptr when absent. Valid until the next insert or erase.
  V* find(uintptr_t key) {
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return &slots_[i].value;
      if (slots_[i].key == 0) return nullptr;
    }
  }
  const V* find(uintptr_t key) const { return const_cast<PointerMap*>(this)->find(key); }

  // Inserts or overwrites. key must not be 0.
  void insert(uintptr_t key, const V& value) {
    // At most half full: linear probing stays near one probe per lookup.
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    size_t i = slot_of(key);
    while (slots_[i].key != 0 && slots_[i].key != key) i = (i + 1) & mask_;
    if (slots_[i].key == 0) ++size_;
    slots_[i] = {key, value};
  }

  // Removes key if present; returns whether it was.
  bool erase(uintptr_t key) {
    V* v = find(key);
    if (v == nullptr) return false;
    erase_found(v);
    return true;
  }

  // Removes the entry whose value find() returned, without probing again.
  void erase_found(V* value) {
    size_t i = size_t(reinterpret_cast<Slot*>(reinterpret_cast<char*>(value) - offsetof(Slot, value)) - slots_.data());
    // Backward shift: pull later members of the probe run into the hole.
    for (size_t j = (i + 1) & mask_; slots_[j].key != 0; j = (j + 1) & mask_) {
      size_t home = slot_of(slots_[j].key);
      // Move j into i when its home is not cyclically within (i, j].
      bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].key = 0;
    --size_;
  }

  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.key != 0) f(s.key, s.value);
  }

 private:
  struct Slot {
    uintptr_t key = 0;
    V value{};
  };
  size_t slot_of(uintptr_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  void rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    shift_ = 64 - __builtin_ctzll(capacity);
    size_ = 0;
    for (const Slot& s : old)
      if (s.key != 0) insert(s.key, s.value);
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 0;
  size_t size_ = 0;
};

}  // namespace hbmalloc

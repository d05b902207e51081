// Free-slot bitmap of a slab: two levels (a summary word over 64 words), so
// finding a free slot is two count-trailing-zeros, whatever the slab size.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace hbmalloc {

class SlotBitmap {
 public:
  static constexpr uint32_t kMaxSlots = 64 * 64;

  // All `slots` (<= kMaxSlots) free.
  void reset(uint32_t slots) {
    words_.fill(0);
    summary_ = 0;
    for (uint32_t w = 0; w * 64 < slots; ++w) {
      uint32_t n = slots - w * 64;
      words_[w] = n >= 64 ? ~uint64_t(0) : (uint64_t(1) << n) - 1;
      summary_ |= uint64_t(1) << w;
    }
  }
  bool any() const { return summary_ != 0; }
  // Takes the lowest free slot; the bitmap must not be empty.
  uint32_t take_first() {
    uint32_t w = uint32_t(std::countr_zero(summary_));
    uint32_t b = uint32_t(std::countr_zero(words_[w]));
    words_[w] &= words_[w] - 1;
    if (words_[w] == 0) summary_ &= ~(uint64_t(1) << w);
    return w * 64 + b;
  }
  // Takes `slot`, which must be free.
  void take(uint32_t slot) {
    words_[slot / 64] &= ~(uint64_t(1) << (slot % 64));
    if (words_[slot / 64] == 0) summary_ &= ~(uint64_t(1) << (slot / 64));
  }
  void put(uint32_t slot) {
    words_[slot / 64] |= uint64_t(1) << (slot % 64);
    summary_ |= uint64_t(1) << (slot / 64);
  }
  bool is_free(uint32_t slot) const { return (words_[slot / 64] >> (slot % 64)) & 1; }
  uint32_t count_free() const {
    uint32_t n = 0;
    for (uint64_t w : words_) n += uint32_t(std::popcount(w));
    return n;
  }
  // The summary bit of every word agrees with the word (for the checker).
  bool consistent() const {
    for (uint32_t w = 0; w < 64; ++w)
      if (((summary_ >> w) & 1) != (words_[w] != 0)) return false;
    return true;
  }

 private:
  uint64_t summary_ = 0;
  std::array<uint64_t, 64> words_{};
};

}  // namespace hbmalloc

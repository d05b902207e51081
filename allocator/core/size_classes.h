// Size classes for small requests: TLSF's two-level index, 8 classes per power
// of two above 512 B, so rounding wastes at most 1/8 of a request above 512 B.
#pragma once

#include <bit>
#include <cstdint>

namespace hbmalloc {

class SizeClasses {
 public:
  static constexpr uint64_t kMinSize = 512;  // everything up to here is one class
  static constexpr int kSubBits = 3;         // 2^3 = 8 classes per power of two
  static constexpr int kSubCount = 1 << kSubBits;

  // max_size: largest request served (rounded up to a class boundary).
  explicit SizeClasses(uint64_t max_size);

  // Class index of a request of `size` bytes (1 <= size <= max_size()). O(1):
  // round up to the class spacing of the size's power of two (TLSF's
  // mapping_search), then the top bit is the first level, the next 3 bits the
  // second.
  static int index_of(uint64_t size) {
    if (size <= kMinSize) return 0;
    int top = 63 - std::countl_zero(size);
    uint64_t step = uint64_t(1) << (top - kSubBits);
    uint64_t rounded = (size + step - 1) & ~(step - 1);
    int fl = 63 - std::countl_zero(rounded);
    int sl = int((rounded >> (fl - kSubBits)) & (kSubCount - 1));
    return (fl - kMinShift) * kSubCount + sl;
  }
  // Bytes of every block of class `index`: 2^fl + sl * 2^(fl-3).
  static uint64_t size_of(int index) {
    int fl = kMinShift + index / kSubCount;
    int sl = index % kSubCount;
    return (uint64_t(1) << fl) + uint64_t(sl) * (uint64_t(1) << (fl - kSubBits));
  }

  uint64_t max_size() const { return max_size_; }
  int count() const { return count_; }

 private:
  static constexpr int kMinShift = 9;  // log2(kMinSize)
  uint64_t max_size_;
  int count_;
};

}  // namespace hbmalloc

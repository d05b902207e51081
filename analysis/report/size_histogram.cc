#include "report/size_histogram.h"

#include <bit>
#include <cstdint>

namespace hbmalloc::report {

void SizeHistogram::add(uint64_t size) {
  if (size == 0) return;
  SizeBucket& b = buckets_[size_t(63 - std::countl_zero(size))];
  ++b.count;
  b.bytes = b.bytes > UINT64_MAX - size ? UINT64_MAX : b.bytes + size;  // a hostile trace must not wrap
}

std::vector<SizeBucket> SizeHistogram::buckets() const {
  int first = 64, last = -1;
  for (int i = 0; i < 64; ++i) {
    if (buckets_[size_t(i)].count == 0) continue;
    if (first == 64) first = i;
    last = i;
  }
  std::vector<SizeBucket> out;
  for (int i = first; i <= last; ++i) {
    SizeBucket b = buckets_[size_t(i)];
    b.log2 = i;
    out.push_back(b);
  }
  return out;
}

}  // namespace hbmalloc::report

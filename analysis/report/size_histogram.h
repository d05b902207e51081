// Request sizes in power-of-two buckets, counts and bytes.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "report/frag_report.h"

namespace hbmalloc::report {

class SizeHistogram {
 public:
  void add(uint64_t size);  // 0 is ignored: nothing was requested
  // Contiguous buckets from the smallest used to the largest; empty when nothing was added.
  std::vector<SizeBucket> buckets() const;

 private:
  std::array<SizeBucket, 64> buckets_{};
};

}  // namespace hbmalloc::report

// Figures read off a layout: one moment's totals, the worst holes, and how
// full each segment is.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "hbmalloc/layout.hpp"
#include "report/frag_report.h"

namespace hbmalloc::report {

MomentFigures moment_of(const Layout& layout, std::string moment);
SegmentUse use_of(const SegmentLayout& segment);
// The `n` largest free blocks of segments that also hold allocated blocks.
std::vector<Hole> worst_holes(const Layout& layout, size_t n);
// The `n` segments holding live blocks with the lowest allocated / size
// (wholly free segments are cache that empty_cache would return).
std::vector<SegmentUse> least_utilized(const Layout& layout, size_t n);

}  // namespace hbmalloc::report

// Figures read off a layout: one moment's totals, the worst holes, and how
// full each segment is.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "hbmalloc/layout.hpp"
#include "report/frag_report.h"

namespace hbmalloc::report {

// Inactive split counts what empty_cache could not give back: every free
// byte of a plain segment holding live blocks; of an expandable segment, the
// free bytes outside its whole free pages (seg.page_size).
MomentFigures moment_of(const Layout& layout, std::string moment);
// Free block b's bytes that empty_cache cannot give back while seg holds live
// blocks: all of them but, in an expandable segment, those on the pages
// (counted from its start) that b covers whole.
uint64_t unreleasable_bytes(const SegmentLayout& seg, const BlockLayout& b);
SegmentUse use_of(const SegmentLayout& segment);
// The `n` largest free blocks of segments that also hold allocated blocks.
std::vector<Hole> worst_holes(const Layout& layout, size_t n);
// The `n` segments holding live blocks with the lowest allocated / size
// (wholly free segments are cache that empty_cache would return).
std::vector<SegmentUse> least_utilized(const Layout& layout, size_t n);

}  // namespace hbmalloc::report

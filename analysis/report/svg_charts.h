// The report's pictures as inline SVG: memory over time, the segment map,
// and the request-size histogram. Each returns one <svg> element.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "report/frag_report.h"

namespace hbmalloc::report {

// Requested / allocated / reserved over the timeline, the peak and OOMs
// marked, the recording allocator's peak reserved as a reference line.
// Empty when the report has no timeline.
std::string timeline_svg(const FragReport& report);

// Each segment a bar scaled by size, blocks coloured allocated / internal
// waste / free, a tooltip per drawn block. At most `max_rows` segments (those
// with the most free bytes) and a bounded number of shapes per segment.
std::string segment_map_svg(const SegmentMap& map, size_t max_rows = 40);

// One bar per power-of-two bucket: request counts, or bytes when `bytes`.
std::string histogram_svg(const std::vector<SizeBucket>& buckets, bool bytes);

}  // namespace hbmalloc::report

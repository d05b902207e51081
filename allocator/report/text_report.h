// A FragReport as terminal text: sections with aligned columns, sizes in
// binary units, ending with what to do.
#pragma once

#include <string>

#include "report/frag_report.h"

namespace hbmalloc::report {

std::string render_text(const FragReport& report);
// A live allocator's statistics as torch.cuda.memory_summary tabulates them,
// then hbmalloc's own figures (cached free, largest free block, external
// fragmentation, limit).
std::string render_summary_text(const Stats& stats, int device);

}  // namespace hbmalloc::report

// A FragReport as terminal text: sections with aligned columns, sizes in
// binary units, ending with what to do.
#pragma once

#include <string>

#include "report/frag_report.h"

namespace hbmalloc::report {

std::string render_text(const FragReport& report);

}  // namespace hbmalloc::report

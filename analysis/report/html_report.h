// A FragReport as one self-contained HTML page: inline CSS and SVG, no
// scripts, no external resources; every text from the trace escaped.
#pragma once

#include <string>

#include "report/frag_report.h"

namespace hbmalloc::report {

std::string render_html(const FragReport& report);

}  // namespace hbmalloc::report

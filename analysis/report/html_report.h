// A FragReport as one self-contained HTML page: inline CSS and SVG, no
// scripts, no external resources; every text from the trace escaped.
#pragma once

#include <string>

#include "report/diff_report.h"
#include "report/frag_report.h"

namespace hbmalloc::report {

std::string render_html(const FragReport& report);
// `hbmalloc diff --html`: the two runs' peaks, sites and segment maps.
std::string render_html(const DiffReport& diff);

}  // namespace hbmalloc::report

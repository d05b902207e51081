// Two runs side by side (`hbmalloc diff`): two traces (before and after a
// change to a training script), or one trace under two policies or settings.
// The peaks, the live bytes by allocation site at each peak reserved (which
// sites grew most), and each run's segment picture at its peak.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "record/trace.h"
#include "report/frag_report.h"

namespace hbmalloc::report {

struct SiteChange {
  std::string where;
  uint64_t a = 0, b = 0;  // live requested bytes at each run's peak reserved
  int64_t change() const { return int64_t(b) - int64_t(a); }
};

struct DiffReport {
  std::string a_name, b_name;  // what each side is: its file, and its policy and settings
  FragReport a, b;
  bool has_stacks = false;        // both traces recorded stacks
  std::vector<SiteChange> sites;  // every site of either peak, the largest growth first
};

// `a` and `b` are the reports of `ta` and `tb` (each replayed, or a static snapshot's).
DiffReport diff_reports(const trace::Trace& ta, FragReport a, const trace::Trace& tb, FragReport b);

std::string render_text(const DiffReport& d);
// {"a": name, "b": name, "peaks": {...}, "sites": [...], "report_a": ..., "report_b": ...}
void to_json(nlohmann::json& j, const DiffReport& d);

}  // namespace hbmalloc::report

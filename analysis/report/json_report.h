// A FragReport as JSON and back, so a saved report can be rendered again
// (`hbmalloc report replay.json`).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "report/frag_report.h"

namespace hbmalloc::report {

// {"format": "hbmalloc-report", "version": 1, "run": ..., ...}
nlohmann::json to_json(const FragReport& report);
// The requests the recording failed, as a replay made them again:
// [{event, time_us, size, stream, served}] (also a member of to_json's object).
nlohmann::json failed_requests_json(const std::vector<replay::FailedRequest>& failed);

// Whether `j` claims to be a report (its "format" field), to tell a saved
// report from a trace without reading the rest.
bool is_report_json(const nlohmann::json& j);

// Throws Error(kInvalidArgument) whose message names `source` and the first
// field that is missing or wrong (a map whose blocks do not tile a segment
// counts as wrong).
FragReport report_from_json(const nlohmann::json& j, const std::string& source);
FragReport report_from_json_text(std::string_view text, const std::string& source);

}  // namespace hbmalloc::report

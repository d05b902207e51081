// A FragReport as JSON and back (nlohmann's to_json / from_json: `json(report)`
// and `json.get<FragReport>()` both work), so a saved report can be rendered
// again (`hbmalloc report replay.json`). report_from_json is the checked way
// in: it names the file and the first bad field.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "report/frag_report.h"

namespace hbmalloc {
namespace replay {
// [{event, time_us, size, stream, served}]: the requests the recording failed,
// as a replay made them again.
void to_json(nlohmann::json& j, const FailedRequest& f);
void from_json(const nlohmann::json& j, FailedRequest& f);
}  // namespace replay

namespace report {

// {"format": "hbmalloc-report", "version": 1, "run": ..., ...}
void to_json(nlohmann::json& j, const FragReport& report);
// Throws json_io::FieldError (report/json_fields.h) at the first bad field.
void from_json(const nlohmann::json& j, FragReport& report);

// Whether `j` claims to be a report (its "format" field), to tell a saved
// report from a trace without reading the rest.
bool is_report_json(const nlohmann::json& j);

// Throws Error(kInvalidArgument) whose message names `source` and the first
// field that is missing or wrong (a map whose blocks do not tile a segment
// counts as wrong).
FragReport report_from_json(const nlohmann::json& j, const std::string& source);
FragReport report_from_json_text(std::string_view text, const std::string& source);

}  // namespace report
}  // namespace hbmalloc

// `hbmalloc report IN`: a fragmentation report from a trace (replayed with the
// defaults), a saved `hbmalloc replay --json` output, or a static snapshot.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_args.h"
#include "json_out.h"
#include "trace/json_input.h"
#include "record/safe_text.h"
#include "commands.h"
#include "hbmalloc/error.hpp"
#include "replay/replay.h"
#include "report/frag_report.h"
#include "report/html_report.h"
#include "report/json_report.h"
#include "report/replay_output.h"
#include "report/text_report.h"
#include "record/write_file.h"
#include "trace/read_trace.h"

namespace hbmalloc::tools {
namespace {

// A saved replay (its own lines and its report) or a bare report; nullopt
// when the text is not JSON of either kind, so it is read as a trace instead.
struct Saved {
  report::FragReport report;
  std::optional<report::ReplayRun> run;  // a saved replay's
};
std::optional<Saved> saved_report(const std::string& bytes, const std::string& source) {
  size_t first = bytes.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || bytes[first] != '{') return std::nullopt;
  if (trace::json_nests_deeper_than(bytes)) return std::nullopt;  // the trace readers name the problem
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  if (report::is_replay_output_json(j)) {
    report::ReplayOutput out = report::replay_output_from_json(j, source);
    return Saved{std::move(out.report), std::move(out.run)};
  }
  if (report::is_report_json(j)) return Saved{report::report_from_json(j, source), std::nullopt};
  return std::nullopt;
}

}  // namespace

int run_report(int argc, char** argv) {
  Args args("report", {"--html", "--device", "--policy", "--conf", "--max-input"}, {"--json"});
  trace::InputLimits limits;
  if (!args.parse(argc, argv) || !args.input_limits(limits)) return 2;
  if (args.positional().size() != 1) {
    args.fail("wants exactly one input: a trace, a static snapshot or a saved replay JSON");
    return 2;
  }
  long device = -1;
  if (!args.integer("--device", 0, 1023, device)) return 2;
  const std::string& in = args.positional()[0];
  try {
    std::string bytes = trace::read_input_file(in, limits);
    std::optional<Saved> saved = saved_report(bytes, in);
    if (!saved) {
      trace::Trace t = trace::read_trace_bytes(bytes, in);
      if (t.devices.empty()) throw Error(ErrorCode::kInvalidArgument, in + ": nothing to report (the trace is empty)");
      Config config =
          settings_of_option("--conf", [&] { return Config::parse(args.value("--conf").value_or("")); });
      if (auto p = args.value("--policy")) config.policy = *p;
      config.backend = "sim";
      saved = Saved{report::report_of(t, device >= 0 ? int(device) : t.devices.front().device, config), std::nullopt};
    }
    const report::FragReport& rep = saved->report;
    if (auto html = args.value("--html")) trace::write_whole_file(*html, report::render_html(rep));
    if (args.has("--json"))
      std::printf("%s\n", json_text(nlohmann::json(rep)).c_str());
    else if (saved->run)  // a saved replay reads as `hbmalloc replay` printed it
      std::printf("%s", report::render_text(report::ReplayOutput{*saved->run, rep}).c_str());
    else
      std::printf("%s", report::render_text(rep).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc report: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools

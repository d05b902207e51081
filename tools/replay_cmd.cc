// `hbmalloc replay TRACE`: replays one device of a trace on the sim backend.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_args.h"
#include "json_out.h"
#include "record/safe_text.h"
#include "commands.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"
#include "policy/policy_catalog.h"
#include "replay/replay.h"
#include "report/advice.h"
#include "report/explain.h"
#include "report/frag_report.h"
#include "report/html_report.h"
#include "report/json_report.h"
#include "report/replay_output.h"
#include "report/text_report.h"
#include "record/write_file.h"
#include "trace/read_trace.h"

namespace hbmalloc::tools {
namespace {

// Explain's verdict and each recorded OOM's cause, first in "What to do".
void add_verdict(const report::Explanation& e, report::FragReport& rep) {
  std::vector<std::string> lines;
  for (const report::OomCause& c : e.ooms)
    if (!c.at_peak) lines.push_back("the recording's OOM at event " + std::to_string(c.event) + ": " + c.cause + ": " + c.detail);
  std::string settings;
  for (const report::SettingRow& row : e.rows) settings += (settings.empty() ? "" : ", ") + row.name;
  lines.push_back("hbmalloc explain (" + settings + " replayed at " +
                  (e.capacity ? format_bytes(*e.capacity) : std::string("an unlimited device")) + "): " + e.verdict);
  rep.advice.insert(rep.advice.begin(), lines.begin(), lines.end());
}

}  // namespace

int run_replay(int argc, char** argv) {
  Args args("replay", {"--policy", "--conf", "--capacity", "--device", "--html", "--max-input"},
            {"--json", "--min-capacity"});
  trace::InputLimits limits;
  if (!args.parse(argc, argv) || !args.input_limits(limits)) return 2;
  if (args.positional().size() != 1) {
    args.fail("wants exactly one TRACE file (see hbmalloc help)");
    return 2;
  }
  replay::ReplayOptions options;
  long device = -1;
  if (!args.capacity("--capacity", options.capacity) || !args.integer("--device", 0, 1023, device)) return 2;
  try {
    options.config = settings_of_option("--conf", [&] { return Config::parse(args.value("--conf").value_or("")); });
    if (auto p = args.value("--policy")) options.config.policy = *p;
    options.config.backend = "sim";  // what replay runs on, whatever the conf says
    trace::Trace t = trace::read_trace_file(args.positional()[0], limits);
    bool empty = true;
    for (const trace::DeviceTrace& d : t.devices) empty = empty && d.events.empty() && d.live_at_start.empty();
    if (empty) throw Error(ErrorCode::kInvalidArgument, t.source + ": nothing to replay (the trace is empty)");
    if (!t.has_history)
      throw Error(ErrorCode::kInvalidArgument,
                  t.source + ": a static snapshot (segments only, no events) cannot be replayed; try hbmalloc report");
    options.device = device >= 0 ? int(device) : t.devices.front().device;
    const trace::DeviceTrace* d = t.device(options.device);
    if (d != nullptr && d->events.empty() && d->live_at_start.empty())
      throw Error(ErrorCode::kInvalidArgument, t.source + ": nothing to replay on device " +
                                                   std::to_string(options.device) + " (no events, no live blocks)");
    replay::as_recorded(t, options);  // cca: the recording's own settings and device
    options.fidelity = policy_named(options.config.policy).reproduces_recording;
    options.config.capacity = options.capacity.value_or(0);

    Progress bar("replay");
    options.progress = [&](uint64_t done, uint64_t total) { bar.update(done, total); };
    replay::ReplayResult r = replay::replay(t, options);
    options.fidelity = false;  // r has it: the replays below need not log and compare again
    std::optional<uint64_t> min_cap;
    if (args.has("--min-capacity")) {
      Progress search("min capacity");
      options.progress = [&](uint64_t done, uint64_t total) { search.update(done, total); };
      min_cap = replay::min_capacity(t, options);
      options.progress = nullptr;
    }

    // The report needs the timeline and the segment maps; a second replay
    // collects them so the first one's speed figure stays a plain replay's.
    report::ReportOptions ro;
    ro.min_capacity = min_cap;
    report::FragReport rep = report::replay_and_report(t, options, ro);
    // A page about a trace that recorded an OOM carries explain's verdict in
    // its "What to do" (the settings are replayed at the recorded device).
    if (args.has("--html") && !r.failed_requests.empty()) {
      report::ExplainOptions eo;
      eo.device = options.device;
      Progress search("explain");
      eo.progress = [&](uint64_t done, uint64_t total) { search.update(done, total); };
      add_verdict(report::explain(t, eo), rep);
    }
    if (auto html = args.value("--html")) trace::write_whole_file(*html, report::render_html(rep));

    const report::ReplayOutput output =
        report::replay_output(t, r, options.config, min_cap, args.has("--min-capacity"), std::move(rep));
    if (args.has("--json")) {
      std::printf("%s\n", json_text(nlohmann::json(output)).c_str());
    } else {
      std::printf("%s", report::render_text(output).c_str());
      if (auto html = args.value("--html")) std::printf("\nHTML report: %s\n", html->c_str());
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc replay: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools

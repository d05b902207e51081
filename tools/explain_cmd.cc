// `hbmalloc explain TRACE`: what to do about the OOM a trace recorded.
#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

#include "cli_args.h"
#include "commands.h"
#include "hbmalloc/error.hpp"
#include "json_out.h"
#include "report/explain.h"
#include "record/write_file.h"
#include "trace/read_trace.h"
#include "record/safe_text.h"

namespace hbmalloc::tools {

int run_explain(int argc, char** argv) {
  Args args("explain", {"--capacity", "--device", "--html", "--jobs", "--max-input"}, {"--json"});
  trace::InputLimits limits;
  if (!args.parse(argc, argv) || !args.input_limits(limits)) return 2;
  if (args.positional().size() != 1) {
    args.fail("wants exactly one TRACE file (see hbmalloc help)");
    return 2;
  }
  std::optional<uint64_t> capacity;
  long device = -1, jobs = 0;
  if (!args.capacity("--capacity", capacity) || !args.integer("--device", 0, 1023, device) ||
      !args.integer("--jobs", 1, 4096, jobs))
    return 2;
  try {
    const trace::Trace t = trace::read_trace_file(args.positional()[0], limits);
    if (t.devices.empty()) throw Error(ErrorCode::kInvalidArgument, t.source + ": nothing to explain (the trace is empty)");
    report::ExplainOptions o;
    o.device = device >= 0 ? int(device) : t.devices.front().device;
    // With no device named, the first device that recorded an OOM.
    if (device < 0)
      for (const trace::DeviceTrace& d : t.devices)
        if (std::any_of(d.events.begin(), d.events.end(),
                        [](const trace::Event& e) { return e.action == trace::Action::kOom; })) {
          o.device = d.device;
          break;
        }
    o.capacity = capacity;
    o.threads = unsigned(jobs);
    Progress bar("explain");
    o.progress = [&](uint64_t done, uint64_t total) { bar.update(done, total); };
    const report::Explanation e = report::explain(t, o);
    if (auto html = args.value("--html")) trace::write_whole_file(*html, report::render_html(e));
    if (args.has("--json"))
      std::printf("%s\n", json_text(report::to_json(e)).c_str());
    else
      std::printf("%s", report::render_text(e).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc explain: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools

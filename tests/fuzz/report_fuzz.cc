// libFuzzer target for what `hbmalloc replay --min-capacity [--json|--html]`
// and `hbmalloc explain` make of any trace a reader accepts: hbm's replay with
// its least capacity and fragmentation report as text, JSON and HTML, the JSON
// read back as `hbmalloc report` reads a saved one (and written again the
// same), and, where the trace recorded a failed request, explain's verdict as
// text, JSON and HTML. A crash, a sanitizer report, a hang, an invariant
// violation or any other exception than an hbmalloc::Error naming the trace
// (or a setting it recorded) is a finding.
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "hbmalloc/error.hpp"
#include "replay/replay.h"
#include "report/explain.h"
#include "report/frag_report.h"
#include "report/html_report.h"
#include "report/replay_output.h"
#include "trace_fuzz.h"

namespace {

using hbmalloc::Error;
namespace report = hbmalloc::report;
namespace replay = hbmalloc::replay;

void report_device(const hbmalloc::trace::Trace& t, int device) {
  replay::ReplayOptions o;
  o.device = device;
  replay::as_recorded(t, o);
  const replay::ReplayResult r = replay::replay(t, o);
  const std::optional<uint64_t> least = replay::min_capacity(t, o);
  report::ReportOptions ro;
  ro.min_capacity = least;
  report::FragReport rep = report::replay_and_report(t, o, ro);
  const std::string html = report::render_html(rep);
  const report::ReplayOutput out = report::replay_output(t, r, o.config, least, true, std::move(rep));
  const std::string text = report::render_text(out);
  const nlohmann::json j = out;
  const std::string dumped = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // A saved replay reads back into what wrote it.
  const report::ReplayOutput back = report::replay_output_from_json(nlohmann::json::parse(dumped), "fuzz");
  if (nlohmann::json(back) != nlohmann::json::parse(dumped)) __builtin_trap();
  if (text.empty() || html.empty()) __builtin_trap();

  if (r.failed_requests.empty()) return;
  report::ExplainOptions eo;
  eo.device = device;
  eo.threads = 1;
  const report::Explanation e = report::explain(t, eo);
  if (report::render_text(e).empty() || report::render_html(e).empty() || report::to_json(e).is_null())
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hbmalloc::fuzz::for_each_device(data, size, [](const hbmalloc::trace::Trace& t, int device) {
    try {
      report_device(t, device);
    } catch (const Error& e) {
      hbmalloc::fuzz::require_named(e);
    }
  });
  return 0;
}

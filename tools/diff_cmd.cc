// `hbmalloc diff A [B]`: two runs side by side (report/diff_report.h).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_args.h"
#include "commands.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "json_out.h"
#include "record/safe_text.h"
#include "record/write_file.h"
#include "replay/replay.h"
#include "report/diff_report.h"
#include "report/frag_report.h"
#include "report/html_report.h"
#include "trace/read_trace.h"

namespace hbmalloc::tools {
namespace {

// `option`: the option that gave `conf`, named in its errors.
Config config_of(const std::optional<std::string>& policy, const std::optional<std::string>& conf,
                 const std::string& option) {
  Config c = settings_of_option(option, [&] { return Config::parse(conf.value_or("")); });
  if (policy) c.policy = *policy;
  c.backend = "sim";
  return c;
}

}  // namespace

int run_diff(int argc, char** argv) {
  Args args("diff", {"--policy", "--conf", "--b-policy", "--b-conf", "--device", "--html", "--max-input"}, {"--json"});
  trace::InputLimits limits;
  if (!args.parse(argc, argv) || !args.input_limits(limits)) return 2;
  const auto& in = args.positional();
  const bool other_settings = args.value("--b-policy") || args.value("--b-conf");
  if (in.size() != 2 && !(in.size() == 1 && other_settings)) {
    args.fail("wants two traces A B, or one trace and --b-policy / --b-conf for its other side");
    return 2;
  }
  long device = -1;
  if (!args.integer("--device", 0, 1023, device)) return 2;
  try {
    const Config a_config = config_of(args.value("--policy"), args.value("--conf"), "--conf");
    const std::string b_conf = args.value("--b-conf") ? "--b-conf" : "--conf";
    const Config b_config =
        other_settings ? config_of(args.value("--b-policy") ? args.value("--b-policy") : args.value("--policy"),
                                   args.value(b_conf), b_conf)
                       : a_config;
    const trace::Trace ta = trace::read_trace_file(in[0], limits);
    const trace::Trace tb = in.size() == 2 ? trace::read_trace_file(in[1], limits) : ta;
    for (const trace::Trace* t : {&ta, &tb})
      if (t->devices.empty()) throw Error(ErrorCode::kInvalidArgument, t->source + ": nothing to compare (the trace is empty)");
    const int da = device >= 0 ? int(device) : ta.devices.front().device;
    const int db = device >= 0 ? int(device) : tb.devices.front().device;
    const report::DiffReport d =
        report::diff_reports(ta, report::report_of(ta, da, a_config), tb, report::report_of(tb, db, b_config));
    if (auto html = args.value("--html")) trace::write_whole_file(*html, report::render_html(d));
    if (args.has("--json"))
      std::printf("%s\n", json_text(nlohmann::json(d)).c_str());
    else
      std::printf("%s", report::render_text(d).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc diff: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools

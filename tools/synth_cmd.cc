// `hbmalloc synth --out FILE`: writes the project's own training-like trace
// (analysis/trace/synthetic.h), the example the README replays.
#include <cstdio>
#include <optional>
#include <string>

#include "cli_args.h"
#include "record/safe_text.h"
#include "commands.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "trace/synthetic.h"
#include "trace/write_trace.h"

namespace hbmalloc::tools {

int run_synth(int argc, char** argv) {
  Args args("synth", {"--out", "--steps", "--seed", "--layers", "--batch"}, {});
  if (!args.parse(argc, argv)) return 2;
  trace::SyntheticOptions o;
  long steps = o.steps, seed = long(o.seed), layers = o.layers, batch = long(o.batch);
  if (!args.integer("--steps", 1, 1000, steps) || !args.integer("--seed", 0, 1L << 40, seed) ||
      !args.integer("--layers", 1, 256, layers) || !args.integer("--batch", 1, 1024, batch))
    return 2;
  auto out = args.value("--out");
  if (!out || !args.positional().empty()) {
    args.fail("wants --out FILE (.hbt or .jsonl) and no other arguments");
    return 2;
  }
  const std::optional<std::string> format = trace::output_format_of(*out);
  if (format != "hbt" && format != "jsonl") {
    args.fail("--out must end in .hbt or .jsonl, got '" + *out + "'");
    return 2;
  }
  o.steps = int(steps);
  o.seed = uint64_t(seed);
  o.layers = int(layers);
  o.batch = uint64_t(batch);
  try {
    trace::Trace t = trace::synthetic_training_trace(o);
    trace::write_trace_file(t, *out);
    std::printf("wrote %s: %zu events, peak requested %s\n", out->c_str(), t.devices[0].events.size(),
                format_bytes(trace::figures_of(t.devices[0]).peak_requested).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc synth: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools

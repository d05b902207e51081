// `hbmalloc synth --out FILE [--workload NAME]`: writes one of the synthetic
// workloads (analysis/synth/workloads.h); the default, gpt, is the example the
// README replays.
#include <cstdio>
#include <optional>
#include <string>

#include "cli_args.h"
#include "commands.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "record/safe_text.h"
#include "synth/gpt_training.h"
#include "synth/workloads.h"
#include "trace/write_trace.h"

namespace hbmalloc::tools {

int run_synth(int argc, char** argv) {
  Args args("synth", {"--out", "--workload", "--steps", "--seed", "--layers", "--batch"}, {});
  if (!args.parse(argc, argv)) return 2;
  const std::string name = args.value("--workload").value_or("gpt");
  const synth::Workload* workload = synth::find_workload(name);
  if (workload == nullptr) {
    std::string known;
    for (const synth::Workload& w : synth::workloads()) known += (known.empty() ? "" : ", ") + std::string(w.name);
    args.fail("unknown --workload '" + trace::safe_text(name) + "' (one of " + known + ")");
    return 2;
  }
  synth::GptOptions g;
  long steps = workload->default_steps, seed = 1, layers = g.layers, batch = long(g.batch);
  if (!args.integer("--steps", 1, 1000, steps) || !args.integer("--seed", 0, 1L << 40, seed) ||
      !args.integer("--layers", 1, 256, layers) || !args.integer("--batch", 1, 1024, batch))
    return 2;
  if (name != "gpt" && (args.value("--layers") || args.value("--batch"))) {
    args.fail("--layers and --batch shape the gpt workload only; '" + name + "' has its model's dimensions");
    return 2;
  }
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
  try {
    trace::Trace t;
    if (name == "gpt") {
      g.steps = int(steps);
      g.seed = uint64_t(seed);
      g.layers = int(layers);
      g.batch = uint64_t(batch);
      t = synth::gpt_training(g);
    } else {
      t = workload->make(synth::WorkloadOptions{uint64_t(seed), int(steps)});
    }
    trace::write_trace_file(t, *out);
    std::printf("wrote %s: %s, %zu events, peak requested %s\n", out->c_str(), std::string(workload->name).c_str(),
                t.devices[0].events.size(), format_bytes(trace::figures_of(t.devices[0]).peak_requested).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc synth: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools

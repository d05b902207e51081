// `hbmalloc convert IN OUT`: a trace of any supported format, written in the
// format OUT's extension names (.pickle/.pkl: a PyTorch memory snapshot that
// PyTorch's memory_viz opens; .hbt; .jsonl).
#include <cstdio>
#include <optional>
#include <string>

#include "cli_args.h"
#include "record/safe_text.h"
#include "commands.h"
#include "hbmalloc/error.hpp"
#include "replay/assign_addresses.h"
#include "trace/read_trace.h"
#include "trace/write_trace.h"

namespace hbmalloc::tools {

int run_convert(int argc, char** argv) {
  Args args("convert", {"--max-input"}, {});
  trace::InputLimits limits;
  if (!args.parse(argc, argv) || !args.input_limits(limits)) return 2;
  if (args.positional().size() != 2) {
    args.fail("wants IN and OUT (see hbmalloc help)");
    return 2;
  }
  const std::string& in = args.positional()[0];
  const std::string& out = args.positional()[1];
  const std::optional<std::string> format = trace::output_format_of(out);
  if (!format) {
    args.fail("cannot tell the output format from '" + out +
              "': name it .pickle or .pkl (PyTorch snapshot), .hbt or .jsonl");
    return 2;
  }
  try {
    trace::Trace t = trace::read_trace_file(in, limits);
    // A snapshot puts every block at its address inside a segment: a trace
    // without addresses takes those of a replay under PyTorch's rules.
    bool replayed = false;
    if (*format == "pytorch-snapshot")
      for (const trace::DeviceTrace& d : t.devices) replayed = replayed || replay::lacks_addresses(d);
    if (replayed) t = replay::with_replayed_addresses(t);
    trace::write_trace_file(t, out);
    size_t events = 0;
    for (const trace::DeviceTrace& d : t.devices) events += d.events.size();
    std::printf("hbmalloc convert: %s (%s) -> %s (%s): %zu device(s), %zu events%s\n", t.source.c_str(),
                t.format.c_str(), trace::safe_text(out).c_str(), format->c_str(), t.devices.size(), events,
                replayed ? "; addresses and segments from a replay under the cca policy (the trace has no addresses)"
                         : "");
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc convert: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools

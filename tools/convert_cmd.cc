// `hbmalloc convert IN OUT`: a trace of any supported format, written in the
// format OUT's extension names (.pickle/.pkl: a PyTorch memory snapshot that
// PyTorch's memory_viz opens; .hbt; .jsonl).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli_args.h"
#include "commands.h"
#include "hbmalloc/error.hpp"
#include "trace/file_io.h"
#include "trace/hbt_format.h"
#include "trace/jsonl_format.h"
#include "trace/read_trace.h"
#include "trace/snapshot_writer.h"

namespace hbmalloc::tools {
namespace {

enum class OutFormat { kUnknown, kPickle, kHbt, kJsonl };

OutFormat format_of(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (ext == ".pickle" || ext == ".pkl") return OutFormat::kPickle;
  if (ext == ".hbt") return OutFormat::kHbt;
  if (ext == ".jsonl") return OutFormat::kJsonl;
  return OutFormat::kUnknown;
}

const char* name_of(OutFormat f) {
  switch (f) {
    case OutFormat::kPickle: return "pytorch-snapshot";
    case OutFormat::kHbt: return "hbt";
    case OutFormat::kJsonl: return "jsonl";
    case OutFormat::kUnknown: break;
  }
  return "unknown";
}

}  // namespace

int run_convert(int argc, char** argv) {
  Args args("convert", {}, {});
  if (!args.parse(argc, argv)) return 2;
  if (args.positional().size() != 2) {
    args.fail("wants IN and OUT (see hbmalloc help)");
    return 2;
  }
  const std::string& in = args.positional()[0];
  const std::string& out = args.positional()[1];
  const OutFormat format = format_of(out);
  if (format == OutFormat::kUnknown) {
    args.fail("cannot tell the output format from '" + out +
              "': name it .pickle or .pkl (PyTorch snapshot), .hbt or .jsonl");
    return 2;
  }
  try {
    const trace::Trace t = trace::read_trace_file(in);
    switch (format) {
      case OutFormat::kPickle: trace::write_whole_file(out, trace::write_pytorch_snapshot(t)); break;
      case OutFormat::kHbt: trace::write_hbt_file(t, out); break;
      case OutFormat::kJsonl: trace::write_jsonl_file(t, out); break;
      case OutFormat::kUnknown: break;
    }
    size_t events = 0;
    for (const trace::DeviceTrace& d : t.devices) events += d.events.size();
    std::printf("hbmalloc convert: %s (%s) -> %s (%s): %zu device(s), %zu events\n", in.c_str(), t.format.c_str(),
                out.c_str(), name_of(format), t.devices.size(), events);
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc convert: %s\n", e.what());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools

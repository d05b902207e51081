// The `hbmalloc` command line: one subcommand per file (tools/*_cmd.cc).
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "commands.h"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: hbmalloc <command> [options]\n"
               "\n"
               "Traces are read in any of these formats, told apart by their content (not the\n"
               "file name): PyTorch memory snapshots (torch.cuda.memory._dump_snapshot pickles,\n"
               "read by a strict data-only reader), PyTorch profiler traces (.json / .json.gz),\n"
               "RAPIDS RMM logging_resource_adaptor CSV, hbmalloc's .hbt and JSON lines.\n"
               "\n"
               "commands:\n"
               "  replay TRACE [--policy hbm|cca] [--conf K:V,...] [--capacity SIZE] [--device N]\n"
               "               [--min-capacity] [--json] [--html FILE]\n"
               "      Replays one device of TRACE (default: its first) on a simulated device of\n"
               "      SIZE bytes (e.g. 80GiB; unlimited when absent) and prints what ran, the\n"
               "      peaks, efficiency (peak requested / peak reserved) against what the recording\n"
               "      allocator reserved, each OOM with the picture then and what would have\n"
               "      avoided it, and the fragmentation report. --min-capacity also finds the\n"
               "      smallest capacity (to 2 MiB) with no OOM. --json prints one JSON object\n"
               "      (events, peak_requested, peak_allocated, peak_reserved, efficiency,\n"
               "      oom_count, events_per_second, native.peak_reserved, min_capacity, report,\n"
               "      vmm: the VMM operations {create, map, set_access, unmap, release} in 2 MiB\n"
               "      granules, their modeled GPU seconds, the part beyond first-time growth\n"
               "      (overhead_seconds), the trace's own duration, the bytes of plain segments\n"
               "      taken and given back, and device_seconds: every device memory call priced\n"
               "      by the same model, a plain segment as its 2 MiB granules).\n"
               "      --html writes the report as one self-contained HTML page with pictures.\n"
               "      An OOM is a result: the exit code is 0 whenever the replay ran.\n"
               "      --policy cca is PyTorch's own allocator, rule for rule: it runs under the\n"
               "      trace's recorded allocator settings (--conf keys such as max_split_size_mb or\n"
               "      expandable_segments:True override them), from the trace's own segments, on\n"
               "      the device the trace implies (an OOM's reserved + device free) unless\n"
               "      --capacity says otherwise, and reports fidelity (recorded, replayed,\n"
               "      matched_fraction: the share of PyTorch's segment events it reproduced).\n"
               "  tune TRACE [--policy cca|hbm|both] [--grid K:V1|V2,...] [--capacity SIZE]\n"
               "             [--device N] [--jobs N] [--top N] [--json]\n"
               "      Replays TRACE under every combination of a policy's knobs (cca:\n"
               "      max_split_size_mb, roundup_power2_divisions, expandable_segments,\n"
               "      garbage_collection_threshold with per_process_memory_fraction; hbm:\n"
               "      small_size, slab_size, vmm, remap, pressure_threshold, segment_round;\n"
               "      --grid sets your own, \"unset\" being\n"
               "      the default) on all cores, at the trace's own capacity (else what the\n"
               "      recording reserved at its peak), and ranks them: fits, peak reserved,\n"
               "      efficiency, min capacity, OOMs. The best setting that was replayed and fit\n"
               "      is printed as a ready PYTORCH_CUDA_ALLOC_CONF=... (cca) or HBMALLOC_CONF=...\n"
               "      (hbm) line.\n"
               "  info TRACE [--json]\n"
               "      Devices, event counts per action, streams, request size histogram, time\n"
               "      span, peak requested, what the recording reserved, allocator settings.\n"
               "  report IN [--html FILE] [--json] [--device N] [--policy P] [--conf K:V,...]\n"
               "      A fragmentation report from a trace (replayed with the given policy), a\n"
               "      saved `replay --json` output, or a static snapshot (segments only).\n"
               "  convert IN OUT\n"
               "      Reads IN (any format above) and writes it in the format OUT's extension\n"
               "      names: .pickle / .pkl (a PyTorch memory snapshot: memory_viz opens it),\n"
               "      .hbt or .jsonl.\n"
               "  synth --out FILE [--steps N] [--seed S] [--layers N] [--batch N]\n"
               "      Writes a deterministic GPT-style training trace (.hbt or .jsonl) whose\n"
               "      sequence length changes every step: the project's own example trace\n"
               "      (examples/gpt_train.hbt is `hbmalloc synth --out examples/gpt_train.hbt`).\n"
               "  demo [--steps N] [--conf K:V,...] [--json]\n"
               "      Drives the allocator itself (sim backend) with a training-like pattern and\n"
               "      prints its statistics.\n"
               "  help\n"
               "      This text.\n"
               "\n"
               "--conf keys of the hbm policy's page-mapped large blocks (CUDA VMM): vmm:on|off,\n"
               "granule_size:2MiB, remap:always|pressure|never, pressure_threshold:0.95 (README).\n"
               "\n"
               "exit codes: 0 ran, 1 out of memory (demo), 2 bad usage or input\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string_view command = argv[1];
  if (command == "help" || command == "--help" || command == "-h") {
    usage(stdout);
    return 0;
  }
  if (command == "demo") return hbmalloc::tools::run_demo(argc - 2, argv + 2);
  if (command == "replay") return hbmalloc::tools::run_replay(argc - 2, argv + 2);
  if (command == "info") return hbmalloc::tools::run_info(argc - 2, argv + 2);
  if (command == "synth") return hbmalloc::tools::run_synth(argc - 2, argv + 2);
  if (command == "report") return hbmalloc::tools::run_report(argc - 2, argv + 2);
  if (command == "convert") return hbmalloc::tools::run_convert(argc - 2, argv + 2);
  if (command == "tune") return hbmalloc::tools::run_tune(argc - 2, argv + 2);
  std::fprintf(stderr, "hbmalloc: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}

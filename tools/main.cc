// The `hbmalloc` command line: one subcommand per file (tools/*_cmd.cc).
#include <cstdio>
#include <string_view>

#include "commands.h"

namespace {

struct Command {
  std::string_view name;
  int (*run)(int argc, char** argv);
  const char* help;  // its synopsis and description, as the full usage shows them
};

constexpr Command kCommands[] = {
    {"replay", &hbmalloc::tools::run_replay,
     "  replay TRACE [--policy hbm|cca] [--conf K:V,...] [--capacity SIZE] [--device N]\n"
     "               [--min-capacity] [--json] [--html FILE]\n"
     "      Replays one device of TRACE (default: its first) on a simulated device of\n"
     "      SIZE bytes (e.g. 80GiB; unlimited when absent) and prints what ran, the\n"
     "      peaks, efficiency (peak requested / peak reserved) against what the recording\n"
     "      allocator reserved, each OOM with the picture then and what would have\n"
     "      avoided it (the first 16 in full, the rest summed in a line; --json lists\n"
     "      every one), and the fragmentation report. --min-capacity also finds the\n"
     "      smallest capacity (to 2 MiB) with no OOM. A request the recording failed\n"
     "      (an OOM in the trace) is made again at its place under every policy: it\n"
     "      fails (an OOM of this replay), or it is served and freed at once, since\n"
     "      the program never held it (\"served here; the recording failed it\"); so\n"
     "      the min capacity serves the failed requests too. --json prints one JSON\n"
     "      object (events, peak_requested, peak_allocated, peak_reserved, efficiency,\n"
     "      oom_count, failed_requests [{event, size, stream, served}],\n"
     "      events_per_second, native.peak_reserved, min_capacity, report,\n"
     "      vmm: the VMM operations {create, map, set_access, unmap, release} in 2 MiB\n"
     "      granules, their modeled GPU seconds, the part beyond first-time growth\n"
     "      (overhead_seconds), the trace's own duration, the bytes of plain segments\n"
     "      taken and given back, device_seconds: every device memory call priced\n"
     "      by the same model, a plain segment as its 2 MiB granules,\n"
     "      floor_seconds: what creating the requested peak once costs by that\n"
     "      model, which no policy serving every request spends less than, and\n"
     "      device_syncs: the device synchronizations the policy made to wait for\n"
     "      queued work). The sim's streams run their work at once; --conf\n"
     "      sim_lag:1ms makes its GPU run that far behind the trace's clock, as a\n"
     "      busy GPU does: streams then wait to share memory and remaps may sync.\n"
     "      --html writes the report as one self-contained HTML page with pictures;\n"
     "      for a trace that recorded an OOM its \"What to do\" opens with explain's\n"
     "      cause and verdict.\n"
     "      An OOM is a result: the exit code is 0 whenever the replay ran.\n"
     "      --policy cca is PyTorch's own allocator, rule for rule: it runs under the\n"
     "      trace's recorded allocator settings (--conf keys such as max_split_size_mb or\n"
     "      expandable_segments:True override them), from the trace's own segments, on\n"
     "      the device the trace implies (an OOM's reserved + device free) unless\n"
     "      --capacity says otherwise, and reports fidelity (recorded, replayed,\n"
     "      matched_fraction: the share of PyTorch's segment events it reproduced).\n"},
    {"explain", &hbmalloc::tools::run_explain,
     "  explain TRACE [--device N] [--capacity SIZE] [--jobs N] [--json] [--html FILE]\n"
     "      What to do about the OOM TRACE recorded (on the first device with one).\n"
     "      For each failed request: its cause with the figures behind it (capacity:\n"
     "      live bytes + request exceed the device, no allocator helps; a limit:\n"
     "      per_process_memory_fraction below the device; other tenants: another\n"
     "      process held device memory; fragmentation: the bytes were there, not in\n"
     "      one piece). With no OOM recorded, the peak, and it says so. Then the trace\n"
     "      replayed at the recorded device (as tune picks it; --capacity sets one)\n"
     "      under the recorded settings, expandable_segments:True, the best setting\n"
     "      tune finds and hbm's defaults, on all cores: fits, peak reserved, min\n"
     "      capacity, modeled device time of segment and VMM calls. It ends with the\n"
     "      line to use, or how many bytes must go and the smallest device that fits.\n"},
    {"tune", &hbmalloc::tools::run_tune,
     "  tune TRACE [--policy cca|hbm|both] [--grid K:V1|V2,...] [--capacity SIZE]\n"
     "             [--device N] [--jobs N] [--top N] [--max-points N] [--json]\n"
     "      Replays TRACE under every combination of a policy's knobs (cca:\n"
     "      max_split_size_mb, roundup_power2_divisions, expandable_segments,\n"
     "      garbage_collection_threshold with per_process_memory_fraction; hbm:\n"
     "      small_size, slab_size, mid_size, vmm, remap, pressure_threshold,\n"
     "      segment_round; --grid sets your own, \"unset\" being\n"
     "      the default) on all cores, at the trace's own capacity (else what the\n"
     "      recording reserved at its peak), and ranks them: fits, peak reserved,\n"
     "      efficiency, min capacity, OOMs. The best setting that was replayed and fit\n"
     "      is printed as a ready PYTORCH_CUDA_ALLOC_CONF=... (cca) or HBMALLOC_CONF=...\n"
     "      (hbm) line; settings that do not fit rank by the device they need, and\n"
     "      when none fits the least device any fits is named. A grid of more than\n"
     "      --max-points combinations (default 4096) is refused before any replay.\n"},
    {"info", &hbmalloc::tools::run_info,
     "  info TRACE [--json]\n"
     "      Devices, event counts per action, streams, request size histogram, time\n"
     "      span, peak requested, what the recording reserved, allocator settings.\n"},
    {"report", &hbmalloc::tools::run_report,
     "  report IN [--html FILE] [--json] [--device N] [--policy P] [--conf K:V,...]\n"
     "      A fragmentation report from a trace (replayed with the given policy), a\n"
     "      saved `replay --json` output, or a static snapshot (segments only).\n"},
    {"diff", &hbmalloc::tools::run_diff,
     "  diff A [B] [--policy P] [--conf K:V,...] [--b-policy P] [--b-conf K:V,...]\n"
     "       [--device N] [--json] [--html FILE]\n"
     "      Two runs side by side: two traces (say, before and after a change to the\n"
     "      training script), or one trace under two policies or settings (--b-*\n"
     "      give B's; without them B runs as A). Peaks, live bytes by allocation\n"
     "      site at each peak reserved (the sites that grew most first), and each\n"
     "      run's segment picture at its peak.\n"},
    {"convert", &hbmalloc::tools::run_convert,
     "  convert IN OUT\n"
     "      Reads IN (any format above) and writes it in the format OUT's extension\n"
     "      names: .pickle / .pkl (a PyTorch memory snapshot: memory_viz opens it),\n"
     "      .hbt or .jsonl. A trace without addresses (synth, old profiler traces)\n"
     "      becomes a snapshot with the addresses and segments of a replay under the\n"
     "      cca policy.\n"},
    {"synth", &hbmalloc::tools::run_synth,
     "  synth --out FILE [--workload NAME] [--steps N] [--seed S] [--layers N] [--batch N]\n"
     "      Writes a deterministic synthetic trace (.hbt or .jsonl), the same for the\n"
     "      same seed, sizes from a real model's dimensions. Workloads:\n"
     "        gpt (default): GPT-2 medium-like training with Adam (hidden 1024, 12\n"
     "          layers, vocabulary 50304; --layers, --batch), sequence length\n"
     "          128..1024 changing per step; examples/gpt_train.hbt is\n"
     "          `hbmalloc synth --out examples/gpt_train.hbt`\n"
     "        checkpointing: GPT-2 large-like (hidden 1280, 36 layers) with\n"
     "          activation checkpointing: layers recomputed in backward\n"
     "        zero-offload: ZeRO-3 style Llama-7B-like training (hidden 4096, FFN\n"
     "          11008, 32 layers, bf16): per-layer gathered parameters and 500 MB\n"
     "          gradient buckets, large transient buffers\n"
     "        moe: Mixtral-like mixture of experts (hidden 4096, FFN 14336, 8\n"
     "          experts, top-2): each expert's buffers change size per layer and step\n"
     "        kv-serving: Llama-2-7B-like serving (32 layers, 32 heads of 128, fp16):\n"
     "          variable batch, per-request KV caches growing in 256-token chunks\n"
     "        cnn-resolution: ResNet-50-like at batch 64, fp16, input resolution\n"
     "          224..1024 changing per step: a few multi-GB activations\n"
     "        pipeline: a 1F1B pipeline stage of a GPT-3 2.7B-like model on 8\n"
     "          compute and 2 communication streams, with record_stream\n"
     "        rl: PPO-like RL of a GPT-2 large-like policy: generation with growing\n"
     "          KV caches alternating with training on the rollouts\n"
     "      --steps sets steps (serving: scheduler iterations); each has its default.\n"},
    {"demo", &hbmalloc::tools::run_demo,
     "  demo [--steps N] [--conf K:V,...] [--json]\n"
     "      Drives the allocator itself (sim backend) with a training-like pattern and\n"
     "      prints its statistics.\n"}};

constexpr const char* kIntro =
    "usage: hbmalloc <command> [options]\n"
    "\n"
    "Traces are read in any of these formats, told apart by their content (not the\n"
    "file name): PyTorch memory snapshots (torch.cuda.memory._dump_snapshot pickles,\n"
    "read by a strict data-only reader), PyTorch profiler traces (.json / .json.gz),\n"
    "RAPIDS RMM logging_resource_adaptor CSV, hbmalloc's .hbt and JSON lines.\n"
    "Every command that reads a trace takes --max-input SIZE: input past it (after\n"
    "decompression; default 2GiB, and a gzip may not inflate past 100 times its\n"
    "size unless --max-input is given) is refused. Capacities and requests go up\n"
    "to 1 PiB, the largest device hbmalloc models.\n"
    "\n"
    "commands:\n";

constexpr const char* kFooter =
    "\n"
    "--conf keys of the hbm policy's page-mapped large blocks (CUDA VMM): vmm:on|off,\n"
    "granule_size:2MiB, remap:always|pressure|never, pressure_threshold:0.95,\n"
    "remap_budget:off|0.01, remap_window:60s, remap_overhead:off|0.05 (README).\n"
    "\n"
    "exit codes: 0 ran, 1 out of memory (demo), 2 bad usage or input\n";

void usage(std::FILE* out) {
  std::fputs(kIntro, out);
  for (const Command& c : kCommands) std::fputs(c.help, out);
  std::fputs("  help [COMMAND]\n"
             "      This text, or only COMMAND's part of it (as does COMMAND --help).\n",
             out);
  std::fputs(kFooter, out);
}

void command_usage(const Command& c, std::FILE* out) {
  std::fprintf(out, "usage: hbmalloc %s [options] (hbmalloc --help lists every command)\n\n", c.name.data());
  std::fputs(c.help, out);
  std::fputs(kFooter, out);
}

const Command* command_named(std::string_view name) {
  for (const Command& c : kCommands)
    if (c.name == name) return &c;
  return nullptr;
}

bool asks_for_help(std::string_view arg) { return arg == "--help" || arg == "-h"; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string_view name = argv[1];
  if (name == "help" || asks_for_help(name)) {
    if (argc < 3) {
      usage(stdout);
      return 0;
    }
    const Command* c = command_named(argv[2]);
    if (c == nullptr) {
      std::fprintf(stderr, "hbmalloc help: unknown command '%s'\n", argv[2]);
      usage(stderr);
      return 2;
    }
    command_usage(*c, stdout);
    return 0;
  }
  const Command* c = command_named(name);
  if (c == nullptr) {
    std::fprintf(stderr, "hbmalloc: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
  }
  for (int i = 2; i < argc; ++i)
    if (asks_for_help(argv[i])) {
      command_usage(*c, stdout);
      return 0;
    }
  return c->run(argc - 2, argv + 2);
}

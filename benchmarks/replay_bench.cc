// Trace replay throughput on the sim backend (issue target: >= 20 M events/s
// over all of ../shared/traces). The traces are read once, before timing; one
// iteration replays every device with events of every trace, so "events/s"
// is the whole collection's events over the replay time alone.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "hbmalloc/error.hpp"
#include "replay/replay.h"
#include "trace/read_trace.h"
#include "synth/gpt_training.h"

namespace {

namespace fs = std::filesystem;
using hbmalloc::replay::ReplayOptions;
using hbmalloc::trace::Trace;

struct Loaded {
  std::vector<Trace> traces;
  uint64_t events = 0;
};

uint64_t events_of(const Trace& t) {
  uint64_t n = 0;
  for (const auto& d : t.devices) n += d.events.size();
  return n;
}

const Loaded& shared_traces() {
  static const Loaded loaded = [] {
    Loaded l;
    fs::path root = fs::path(HBMALLOC_SOURCE_DIR) / ".." / "shared" / "traces";
    if (!fs::exists(root)) return l;
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(root))
      if (e.is_regular_file() && e.path().filename() != "README.md") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& p : files) {
      try {
        Trace t = hbmalloc::trace::read_trace_file(p.string());
        if (!t.has_history) continue;
        l.events += events_of(t);
        l.traces.push_back(std::move(t));
      } catch (const hbmalloc::Error&) {
        // not a trace (not_a_snapshot_*): nothing to replay
      }
    }
    return l;
  }();
  return loaded;
}

void replay_all(benchmark::State& state, const std::vector<Trace>& traces, uint64_t events) {
  if (traces.empty()) {
    state.SkipWithError("no traces (../shared/traces missing)");
    return;
  }
  double replay_seconds = 0;
  for (auto _ : state) {
    for (const Trace& t : traces)
      for (const auto& d : t.devices) {
        if (d.events.empty()) continue;
        ReplayOptions o;
        o.device = d.device;
        auto r = hbmalloc::replay::replay(t, o);
        replay_seconds += r.seconds;
        benchmark::DoNotOptimize(r.peak_reserved);
      }
  }
  state.counters["events"] = double(events);
  // Replay loop only (allocator construction and teardown excluded).
  state.counters["events_per_s_loop"] = double(events) * double(state.iterations()) / replay_seconds;
  state.counters["events_per_s"] = benchmark::Counter(double(events), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_ReplaySharedTraces(benchmark::State& state) {
  const Loaded& l = shared_traces();
  replay_all(state, l.traces, l.events);
}
BENCHMARK(BM_ReplaySharedTraces)->Name("replay/shared_traces")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ReplaySynthetic(benchmark::State& state) {
  static const std::vector<Trace> traces{hbmalloc::synth::gpt_training({})};
  replay_all(state, traces, events_of(traces[0]));
}
BENCHMARK(BM_ReplaySynthetic)->Name("replay/synthetic")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=5", agg = "--benchmark_report_aggregates_only=true";
  bool has_reps = false;
  for (int i = 1; i < argc; ++i) has_reps |= std::string(argv[i]).rfind("--benchmark_repetitions", 0) == 0;
  if (!has_reps) {
    args.push_back(reps.data());
    args.push_back(agg.data());
  }
  int n = int(args.size());
  benchmark::Initialize(&n, args.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

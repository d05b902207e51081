// read_pytorch_snapshot end to end (pickle parse + conversion) over every
// snapshot in ../shared/traces/snapshots, read into memory once. The issue's
// target is >= 200 MB/s (bytes_per_second).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "trace/read_trace.h"

namespace {

namespace fs = std::filesystem;

struct Snapshot {
  std::string name;
  std::string bytes;
};

const std::vector<Snapshot>& snapshots() {
  static const std::vector<Snapshot> all = [] {
    std::vector<Snapshot> out;
    const fs::path dir = fs::path(HBMALLOC_SOURCE_DIR) / ".." / "shared" / "traces" / "snapshots";
    if (!fs::is_directory(dir)) return out;
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::ifstream f(entry.path(), std::ios::binary);
      std::stringstream ss;
      ss << f.rdbuf();
      out.push_back({entry.path().filename().string(), ss.str()});
    }
    return out;
  }();
  return all;
}

void BM_ReadAllSnapshots(benchmark::State& state) {
  const auto& all = snapshots();
  if (all.empty()) {
    state.SkipWithError("no ../shared/traces/snapshots");
    return;
  }
  int64_t bytes = 0;
  uint64_t events = 0;
  for (auto _ : state) {
    for (const Snapshot& s : all) {
      const hbmalloc::trace::Trace t = hbmalloc::trace::read_pytorch_snapshot(s.bytes, s.name);
      for (const auto& d : t.devices) events += d.events.size();
      bytes += static_cast<int64_t>(s.bytes.size());
      benchmark::DoNotOptimize(t);
    }
  }
  state.SetBytesProcessed(bytes);
  state.counters["files"] = static_cast<double>(all.size());
  state.counters["events/s"] = benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ReadAllSnapshots)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

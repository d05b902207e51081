// Recording through the C ABI, end to end, each case in a forked child so it
// gets a fresh registry and environment: HBMALLOC_TRACE (several devices, one
// file, completed at exit), hbm_trace_start / hbm_trace_stop, HBMALLOC_OOM_DUMP
// (files named in the error, replayable, allocator usable after), bad paths.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "hbmalloc/hbmalloc.h"
#include "replay/replay.h"
#include "support/scratch.h"
#include "support/slurp.h"
#include "trace/read_trace.h"

namespace {

namespace fs = std::filesystem;
using hbmalloc::testing::slurp;
using hbmalloc::trace::Action;

fs::path temp_dir(const std::string& name) { return hbmalloc::testing::scratch_dir("recorder_abi_" + name); }

cudaStream_t stream(uintptr_t id) { return reinterpret_cast<cudaStream_t>(id); }

// Runs body in a child with the given environment; the child's exit code is
// body's return value, and exit() (not _exit) runs the atexit hooks.
int in_child(const std::vector<std::pair<std::string, std::string>>& environment, const std::function<int()>& body) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : environment) setenv(k.c_str(), v.c_str(), 1);
    std::exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

uint64_t count(const hbmalloc::trace::DeviceTrace& d, Action a) {
  uint64_t n = 0;
  for (const auto& e : d.events) n += e.action == a;
  return n;
}

TEST(RecorderAbi, TraceEnvRecordsEveryDeviceToOneCompleteFile) {
  fs::path dir = temp_dir("env");
  const fs::path file = dir / "run.hbt";
  int code = in_child({{"HBMALLOC_CONF", "backend:sim,capacity:1GiB"}, {"HBMALLOC_TRACE", file.string()}}, [] {
    void* kept = nullptr;
    for (int i = 0; i < 100; ++i) {
      for (int device : {0, 1}) {
        void* p = hbm_malloc(ssize_t(1024 * (i + 1)), device, stream(i % 2));
        if (p == nullptr) return 1;
        if (i == 50 && device == 0) {
          kept = p;
          continue;
        }
        if (i % 3 == 0) hbm_record_stream(p, stream(7));
        hbm_free(p, ssize_t(1024 * (i + 1)), device, stream(i % 2));
      }
    }
    hbm_empty_cache();
    return kept != nullptr ? 0 : 2;  // exits with `kept` live: the trace ends with it
  });
  ASSERT_EQ(code, 0);
  hbmalloc::trace::Trace t = hbmalloc::trace::read_trace_file(file.string());
  ASSERT_EQ(t.devices.size(), 2u);
  EXPECT_EQ(t.capacity, std::optional<uint64_t>(1ull << 30));
  EXPECT_EQ(count(t.devices[0], Action::kAlloc), 100u);
  EXPECT_EQ(count(t.devices[1], Action::kAlloc), 100u);
  EXPECT_EQ(count(t.devices[0], Action::kFree), 99u);
  EXPECT_EQ(count(t.devices[0], Action::kEmptyCache), 1u);
  EXPECT_EQ(count(t.devices[0], Action::kMarker), 34u);  // record_stream: i % 3 == 0
  EXPECT_FALSE(t.devices[0].segments_at_end.empty()) << "the block kept live holds a segment";
  for (int device : {0, 1}) {
    hbmalloc::replay::ReplayOptions o;
    o.device = device;
    hbmalloc::replay::ReplayResult r = hbmalloc::replay::replay(t, o);
    EXPECT_EQ(r.peak_requested, hbmalloc::trace::figures_of(t.devices[size_t(device)]).peak_requested);
    EXPECT_TRUE(r.ooms.empty());
  }
}

TEST(RecorderAbi, TraceStartAndStopAtRunTime) {
  fs::path dir = temp_dir("start");
  const fs::path file = dir / "window.hbt", errors = dir / "errors.txt";
  int code = in_child({{"HBMALLOC_CONF", "backend:sim"}}, [&] {
    void* before = hbm_malloc(3 << 20, 0, nullptr);
    if (before == nullptr) return 1;
    if (hbm_trace_stop() != 0) return 2;  // nothing being written: fine
    std::string log;
    if (hbm_trace_start("/nonexistent-hbm-dir/t.hbt") != -1) return 3;
    log += std::string(hbm_last_error()) + "\n";
    if (hbm_trace_start(file.c_str()) != 0) return 4;
    if (hbm_trace_start(file.c_str()) != -1) return 5;
    log += std::string(hbm_last_error()) + "\n";
    void* during = hbm_malloc(5000, 0, nullptr);
    hbm_free(before, 3 << 20, 0, nullptr);
    hbm_free(during, 5000, 0, nullptr);
    void* other = hbm_malloc(7000, 2, nullptr);  // a device created while recording
    hbm_free(other, 7000, 2, nullptr);
    if (hbm_trace_stop() != 0) return 6;
    void* after = hbm_malloc(9000, 0, nullptr);  // not recorded
    hbm_free(after, 9000, 0, nullptr);
    write_text(errors, log);
    _exit(0);
  });
  ASSERT_EQ(code, 0);
  const std::string log = slurp(errors);
  EXPECT_NE(log.find("/nonexistent-hbm-dir/t.hbt"), std::string::npos) << log;
  EXPECT_NE(log.find("already being written"), std::string::npos) << log;
  hbmalloc::trace::Trace t = hbmalloc::trace::read_trace_file(file.string());
  ASSERT_EQ(t.devices.size(), 2u);
  const auto& d = t.devices[0];
  ASSERT_EQ(d.live_at_start.size(), 1u);
  EXPECT_EQ(d.live_at_start[0].requested, 3u << 20);
  EXPECT_EQ(count(d, Action::kAlloc), 1u);
  EXPECT_EQ(count(d, Action::kFree), 2u);
  EXPECT_EQ(t.devices[1].device, 2);
  EXPECT_EQ(count(t.devices[1], Action::kAlloc), 1u);
}

TEST(RecorderAbi, OomDumpNamesItsFilesAndTheAllocatorStaysUsable) {
  fs::path dir = temp_dir("oom");
  const fs::path dumps = dir / "dumps", errors = dir / "error.txt";
  int code = in_child({{"HBMALLOC_CONF", "backend:sim,capacity:64MiB"},
                       {"HBMALLOC_OOM_DUMP", dumps.string()},
                       {"HBMALLOC_OOM_DUMP_EVENTS", "64"}},
                      [&] {
                        std::vector<void*> live;
                        for (int i = 0; i < 1000; ++i) {
                          void* p = hbm_malloc(ssize_t(3 << 20) + i, 0, stream(i % 3));
                          if (p == nullptr) break;
                          live.push_back(p);
                          if (i % 4 == 3) {  // some churn before the failure
                            hbm_free(live.front(), -1, 0, nullptr);
                            live.erase(live.begin());
                          }
                        }
                        write_text(errors, hbm_last_error());
                        if (hbm_check_invariants(0) != 0) return 1;
                        hbm_free(live.back(), -1, 0, nullptr);
                        void* again = hbm_malloc(1 << 20, 0, nullptr);
                        if (again == nullptr) return 2;
                        hbm_free(again, 1 << 20, 0, nullptr);
                        return 0;
                      });
  ASSERT_EQ(code, 0);
  const std::string error = slurp(errors);
  EXPECT_NE(error.find("tried to allocate"), std::string::npos) << error;
  const size_t at = error.find("OOM dump: trace ");
  ASSERT_NE(at, std::string::npos) << error;
  const std::string trace_file = error.substr(at + 16, error.find(", summary ") - at - 16);
  const size_t summary_at = error.find(", summary ") + 10;
  const std::string report_file = error.substr(summary_at, error.find_first_of(",\n", summary_at) - summary_at);
  EXPECT_EQ(fs::path(trace_file).parent_path(), dumps);
  EXPECT_EQ(fs::path(trace_file).extension(), ".hbt");
  EXPECT_EQ(fs::path(report_file).extension(), ".txt");
  ASSERT_TRUE(fs::exists(report_file)) << report_file;
  EXPECT_NE(slurp(report_file).find("failed request"), std::string::npos);
  hbmalloc::trace::Trace t = hbmalloc::trace::read_trace_file(trace_file);
  ASSERT_EQ(t.devices.size(), 1u);
  EXPECT_LE(t.devices[0].events.size(), 64u);
  EXPECT_EQ(t.devices[0].events.back().action, Action::kOom);
  hbmalloc::replay::ReplayOptions o;
  o.capacity = 64ull << 20;
  hbmalloc::replay::ReplayResult r = hbmalloc::replay::replay(t, o);
  EXPECT_EQ(r.events, t.devices[0].events.size());
}

TEST(RecorderAbi, UnwritableTracePathFailsTheAllocationWithItsName) {
  fs::path dir = temp_dir("unwritable");
  const fs::path errors = dir / "error.txt";
  int code = in_child({{"HBMALLOC_CONF", "backend:sim"}, {"HBMALLOC_TRACE", "/nonexistent-hbm-dir/run.hbt"}}, [&] {
    void* p = hbm_malloc(4096, 0, nullptr);
    write_text(errors, hbm_last_error());
    return p == nullptr ? 0 : 1;
  });
  ASSERT_EQ(code, 0);
  const std::string error = slurp(errors);
  EXPECT_NE(error.find("HBMALLOC_TRACE"), std::string::npos) << error;
  EXPECT_NE(error.find("/nonexistent-hbm-dir/run.hbt"), std::string::npos) << error;
}

}  // namespace

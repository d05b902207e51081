// The runtime recorder on a SimBackend Allocator: what it writes replays to
// the live run's figures, its OOM dump is a consistent, replayable trace of
// the recent past (also after the memory buffer dropped its first half), and
// a bad path is a clear error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/sim_backend.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/recorder.hpp"
#include "replay/replay.h"
#include "trace/read_trace.h"
#include "record/recorder.h"
#include "support/cli_run.h"
#include "support/scratch.h"
#include "support/slurp.h"

namespace hbmalloc {
namespace {

namespace fs = std::filesystem;
using trace::Action;

fs::path temp_dir(const std::string& name) { return testing::scratch_dir("recorder_" + name); }

struct Live {
  void* ptr;
  uint64_t size;
};

// Random operations on one allocator: sizes from 1 B to 48 MiB on four
// streams, frees, record_stream on held and idle streams, empty_cache, and
// OOMs when the capacity is small. Returns the OOM errors' texts.
class Driver {
 public:
  Driver(Allocator& a, SimBackend& sim, uint32_t seed) : a_(a), sim_(sim), rng_(seed) {}

  std::vector<std::string> run(int steps) {
    std::vector<std::string> ooms;
    for (int i = 0; i < steps; ++i) {
      const uint32_t op = rng_() % 100;
      if (op < 50 || live_.empty()) {
        const uint64_t size = rng_() % 4 == 0 ? 1 + rng_() % (48u << 20) : 1 + rng_() % (600u << 10);
        const StreamId stream = rng_() % 4;
        try {
          live_.push_back({a_.malloc(size, stream), size});
          ++mallocs_;
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
          ooms.push_back(e.what());
        }
      } else if (op < 88) {
        const size_t k = rng_() % live_.size();
        a_.free(live_[k].ptr, int64_t(live_[k].size));
        live_[k] = live_.back();
        live_.pop_back();
      } else if (op < 95) {
        const StreamId other = 10 + rng_() % 3;
        if (rng_() % 2) sim_.hold_stream(other);
        a_.record_stream(live_[rng_() % live_.size()].ptr, other);
      } else if (op < 98) {
        sim_.complete_stream(10 + rng_() % 3);
      } else {
        a_.empty_cache();
      }
    }
    return ooms;
  }
  void free_all() {
    for (const Live& l : live_) a_.free(l.ptr, int64_t(l.size));
    live_.clear();
  }
  uint64_t mallocs() const { return mallocs_; }

 private:
  Allocator& a_;
  SimBackend& sim_;
  std::mt19937 rng_;
  std::vector<Live> live_;
  uint64_t mallocs_ = 0;
};

struct Rig {
  SimBackend* sim;
  std::unique_ptr<Allocator> allocator;
};

Rig make_rig(uint64_t capacity, int device = 0) {
  Config config = Config::parse("backend:sim,capacity:" + std::to_string(capacity));
  auto sim = std::make_unique<SimBackend>(device, capacity);
  SimBackend* raw = sim.get();
  return {raw, std::make_unique<Allocator>(config, std::move(sim))};
}

// Live requested and reserved bytes at the end of a device's trace.
struct EndFigures {
  uint64_t requested = 0, reserved = 0, segments_at_end = 0;
};
EndFigures end_of(const trace::DeviceTrace& d) {
  std::vector<uint64_t> live(d.block_count, 0);
  EndFigures f;
  for (const trace::BlockInfo& b : d.live_at_start) live[b.id] = b.requested, f.requested += b.requested;
  for (const trace::SegmentInfo& s : d.segments_at_start) f.reserved += s.size;
  for (const trace::Event& e : d.events) {
    if (e.action == Action::kAlloc) live[e.id] = e.size, f.requested += e.size;
    if (e.action == Action::kFree) f.requested -= live[e.id];
    if (e.action == Action::kSegmentAlloc || e.action == Action::kSegmentMap) f.reserved += e.size;
    if (e.action == Action::kSegmentFree || e.action == Action::kSegmentUnmap) f.reserved -= e.size;
  }
  for (const trace::SegmentInfo& s : d.segments_at_end) f.segments_at_end += s.size;
  return f;
}

uint64_t count(const trace::DeviceTrace& d, Action a) {
  return uint64_t(std::count_if(d.events.begin(), d.events.end(), [a](const trace::Event& e) { return e.action == a; }));
}

replay::ReplayResult replay_unlimited(const trace::Trace& t, int device = 0) {
  replay::ReplayOptions o;
  o.device = device;
  o.infer_empty_cache = false;
  return replay::replay(t, o);
}

TEST(Recorder, RandomRunReplaysToTheLiveFigures) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    fs::path dir = temp_dir("random");
    Rig rig = make_rig(256ull << 20);
    auto recorder = std::make_shared<Recorder>(RecorderOptions{(dir / "run.hbt").string(), "", 0});
    rig.allocator->attach_recorder(recorder);
    Driver driver(*rig.allocator, *rig.sim, seed);
    std::vector<std::string> ooms = driver.run(4000);
    EXPECT_GT(ooms.size(), 0u) << "the capacity should be small enough to fail sometimes";
    rig.allocator->check_invariants();
    recorder->stop_file();

    const Stats live = rig.allocator->stats();
    trace::Trace t = trace::read_trace_file((dir / "run.hbt").string());
    EXPECT_EQ(t.format, "hbt");
    EXPECT_EQ(t.recorder.rfind("hbmalloc ", 0), 0u) << t.recorder;
    EXPECT_EQ(t.capacity, std::optional<uint64_t>(256ull << 20));
    EXPECT_FALSE(t.settings.empty());
    ASSERT_EQ(t.devices.size(), 1u);
    const trace::DeviceTrace& d = t.devices[0];
    EXPECT_TRUE(d.has_segment_picture);
    EXPECT_EQ(count(d, Action::kAlloc), driver.mallocs());
    EXPECT_EQ(count(d, Action::kOom), ooms.size());
    EXPECT_GT(count(d, Action::kEmptyCache), 0u);
    EXPECT_GT(count(d, Action::kMarker), 0u);  // record_stream
    // Held streams make some frees wait: requested and completed apart.
    EXPECT_EQ(count(d, Action::kFreeRequested), count(d, Action::kFree) + uint64_t(live.active.all.current - live.allocation.all.current));

    trace::TraceFigures f = trace::figures_of(d);
    ASSERT_TRUE(f.native_peak_reserved.has_value());
    EXPECT_EQ(*f.native_peak_reserved, uint64_t(live.reserved_bytes.all.peak));
    EXPECT_EQ(f.peak_requested, uint64_t(live.requested_bytes.all.peak));
    EXPECT_EQ(f.native_ooms, uint64_t(live.num_ooms));
    EndFigures end = end_of(d);
    EXPECT_EQ(end.requested, uint64_t(live.requested_bytes.all.current));
    EXPECT_EQ(end.reserved, uint64_t(live.reserved_bytes.all.current));
    EXPECT_EQ(end.segments_at_end, uint64_t(live.reserved_bytes.all.current));

    // Unlimited, the replay serves the requests the live run failed (and lets
    // each go at once): its peak is the trace's demand, the failed ones included.
    replay::ReplayResult r = replay_unlimited(t);
    EXPECT_EQ(r.peak_requested, f.peak_demand);
    EXPECT_GE(f.peak_demand, uint64_t(live.requested_bytes.all.peak));
    EXPECT_EQ(r.failed_requests.size(), f.native_ooms);
    for (const replay::FailedRequest& failed : r.failed_requests) EXPECT_TRUE(failed.served);
    EXPECT_TRUE(r.ooms.empty());
    EXPECT_EQ(r.native.native_peak_reserved, f.native_peak_reserved);
  }
}

TEST(Recorder, AttachedLateStartsFromWhatTheAllocatorHolds) {
  fs::path dir = temp_dir("late");
  Rig rig = make_rig(0);
  Driver before(*rig.allocator, *rig.sim, 7);
  before.run(300);
  const Stats at_attach = rig.allocator->stats();
  ASSERT_GT(at_attach.allocation.all.current, 0);

  auto recorder = std::make_shared<Recorder>(RecorderOptions{(dir / "late.hbt").string(), "", 0});
  rig.allocator->attach_recorder(recorder);
  Driver after(*rig.allocator, *rig.sim, 8);
  after.run(600);
  before.free_all();  // blocks from before the recorder, freed while it records
  after.free_all();
  rig.allocator->empty_cache();
  rig.sim->synchronize();
  rig.allocator->empty_cache();
  recorder->stop_file();

  trace::Trace t = trace::read_trace_file((dir / "late.hbt").string());
  const trace::DeviceTrace& d = t.devices.at(0);
  uint64_t live_bytes = 0;
  for (const trace::BlockInfo& b : d.live_at_start) live_bytes += b.requested;
  EXPECT_EQ(live_bytes, uint64_t(at_attach.requested_bytes.all.current));
  uint64_t start_reserved = 0;
  for (const trace::SegmentInfo& s : d.segments_at_start) start_reserved += s.size;
  EXPECT_EQ(start_reserved, uint64_t(at_attach.reserved_bytes.all.current));
  const Stats now = rig.allocator->stats();
  EndFigures end = end_of(d);
  EXPECT_EQ(end.requested, uint64_t(now.requested_bytes.all.current));
  EXPECT_EQ(end.reserved, uint64_t(now.reserved_bytes.all.current));
  replay::ReplayResult r = replay_unlimited(t);
  EXPECT_TRUE(r.ooms.empty());
}

TEST(Recorder, SeveralDevicesShareOneFileAndDetaching) {
  fs::path dir = temp_dir("devices");
  Rig zero = make_rig(0, 0), one = make_rig(0, 1);
  auto recorder = std::make_shared<Recorder>(RecorderOptions{(dir / "both.hbt").string(), "", 0});
  zero.allocator->attach_recorder(recorder);
  one.allocator->attach_recorder(recorder);
  EXPECT_THROW(zero.allocator->attach_recorder(recorder), Error) << "a device is recorded once";
  Driver d0(*zero.allocator, *zero.sim, 11), d1(*one.allocator, *one.sim, 12);
  d0.run(200);
  d1.run(300);
  one.allocator->attach_recorder(nullptr);
  d1.run(100);  // not recorded
  recorder->stop_file();

  trace::Trace t = trace::read_trace_file((dir / "both.hbt").string());
  ASSERT_EQ(t.devices.size(), 2u);
  EXPECT_EQ(count(t.devices[0], Action::kAlloc), d0.mallocs());
  EXPECT_LT(count(t.devices[1], Action::kAlloc), d1.mallocs());
  for (int device : {0, 1}) EXPECT_TRUE(replay_unlimited(t, device).ooms.empty());
}

TEST(Recorder, ThreadsAndDevicesShareOneRecorder) {
  fs::path dir = temp_dir("threads");
  Rig zero = make_rig(0, 0), one = make_rig(0, 1);
  auto recorder = std::make_shared<Recorder>(RecorderOptions{(dir / "threads.hbt").string(), (dir / "dumps").string(), 512});
  zero.allocator->attach_recorder(recorder);
  one.allocator->attach_recorder(recorder);
  constexpr int kThreads = 4, kPairs = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      Allocator& a = t % 2 ? *one.allocator : *zero.allocator;
      std::mt19937 rng(t);
      std::vector<void*> live;
      for (int i = 0; i < kPairs; ++i) {
        live.push_back(a.malloc(1 + rng() % (3u << 20), StreamId(t)));
        if (live.size() > 8) {
          a.free(live.front());
          live.erase(live.begin());
        }
      }
      for (void* p : live) a.free(p);
    });
  for (std::thread& t : threads) t.join();
  recorder->stop_file();
  trace::Trace t = trace::read_trace_file((dir / "threads.hbt").string());
  ASSERT_EQ(t.devices.size(), 2u);
  for (int device : {0, 1}) {
    const trace::DeviceTrace& d = t.devices[size_t(device)];
    EXPECT_EQ(count(d, Action::kAlloc), uint64_t(kThreads / 2 * kPairs));
    EXPECT_EQ(count(d, Action::kFree), uint64_t(kThreads / 2 * kPairs));
    EXPECT_EQ(end_of(d).requested, 0u);
    const Stats live = (device ? one : zero).allocator->stats();
    EXPECT_EQ(trace::figures_of(d).native_peak_reserved, std::optional<uint64_t>(live.reserved_bytes.all.peak));
    EXPECT_EQ(replay_unlimited(t, device).peak_requested, uint64_t(live.requested_bytes.all.peak));
    std::optional<trace::Trace> recent = recorder->engine().recent(device);
    ASSERT_TRUE(recent.has_value());
    EXPECT_EQ(end_of(recent->devices.at(0)).requested, 0u);
    EXPECT_TRUE(replay_unlimited(*recent, device).ooms.empty());
  }
}

TEST(Recorder, StartAndStopFilesWhileRecording) {
  fs::path dir = temp_dir("files");
  Rig rig = make_rig(0);
  auto recorder = std::make_shared<Recorder>(RecorderOptions{"", (dir / "dumps").string(), 1000});
  rig.allocator->attach_recorder(recorder);
  Driver driver(*rig.allocator, *rig.sim, 21);
  driver.run(200);
  recorder->start_file((dir / "a.hbt").string());
  EXPECT_THROW(recorder->start_file((dir / "b.hbt").string()), Error);
  driver.run(200);
  recorder->stop_file();
  recorder->stop_file();  // nothing to stop: no error
  driver.run(100);
  recorder->start_file((dir / "b.hbt").string());
  driver.run(100);
  recorder->stop_file();
  for (const char* name : {"a.hbt", "b.hbt"}) {
    SCOPED_TRACE(name);
    trace::Trace t = trace::read_trace_file((dir / name).string());
    EXPECT_FALSE(t.devices.at(0).live_at_start.empty());
    EXPECT_TRUE(replay_unlimited(t).ooms.empty());
  }
}

// Runs until the first OOM and returns its text.
std::string run_to_oom(Allocator& a, SimBackend& sim, uint32_t seed, int max_steps = 100000) {
  Driver driver(a, sim, seed);
  for (int i = 0; i < max_steps; ++i) {
    std::vector<std::string> ooms = driver.run(1);
    if (!ooms.empty()) return ooms.front();
  }
  return "";
}

// "...; OOM dump: trace X.hbt, summary X.txt" -> {X.hbt, X.txt}
std::vector<std::string> dump_files(const std::string& text) {
  std::vector<std::string> out;
  const size_t at = text.find("OOM dump: trace ");
  if (at == std::string::npos) return out;
  const std::string rest = text.substr(at + 16);
  const size_t sep = rest.find(", summary ");
  out.push_back(rest.substr(0, sep));
  if (sep != std::string::npos) out.push_back(rest.substr(sep + 10));
  return out;
}

void expect_consistent_dump(const std::string& file, const Stats& at_oom, uint64_t request) {
  trace::Trace t = trace::read_trace_file(file);
  ASSERT_EQ(t.devices.size(), 1u);
  const trace::DeviceTrace& d = t.devices[0];
  ASSERT_FALSE(d.events.empty());
  EXPECT_EQ(d.events.back().action, Action::kOom);
  EXPECT_EQ(d.events.back().size, request);
  EndFigures end = end_of(d);
  EXPECT_EQ(end.requested, uint64_t(at_oom.requested_bytes.all.current));
  EXPECT_EQ(end.reserved, uint64_t(at_oom.reserved_bytes.all.current));
  EXPECT_EQ(end.segments_at_end, uint64_t(at_oom.reserved_bytes.all.current));
  replay::ReplayResult r = replay_unlimited(t);
  EXPECT_TRUE(r.ooms.empty());
  ASSERT_FALSE(r.failed_requests.empty());
  EXPECT_TRUE(r.failed_requests.back().served);
  EXPECT_EQ(r.failed_requests.back().size, request);
  EXPECT_EQ(r.peak_requested, trace::figures_of(d).peak_demand);
}

uint64_t failed_request(const trace::Trace& t) { return t.devices.at(0).events.back().size; }

TEST(Recorder, OomDumpIsAReplayableTraceOfTheRecentPast) {
  for (size_t cap : {size_t(1) << 18, size_t(16)}) {  // the second drops its first half many times
    SCOPED_TRACE(cap);
    fs::path dir = temp_dir("dump" + std::to_string(cap));
    Rig rig = make_rig(128ull << 20);
    auto recorder = std::make_shared<Recorder>(RecorderOptions{"", (dir / "out").string(), cap});
    rig.allocator->attach_recorder(recorder);
    std::string text = run_to_oom(*rig.allocator, *rig.sim, 5);
    ASSERT_FALSE(text.empty());
    const Stats at_oom = rig.allocator->stats();
    std::vector<std::string> files = dump_files(text);
    ASSERT_EQ(files.size(), 2u) << text;
    for (const std::string& f : files) EXPECT_TRUE(fs::exists(f)) << f;
    EXPECT_EQ(fs::path(files[0]).parent_path(), dir / "out");
    EXPECT_EQ(fs::path(files[0]).filename().string().rfind("hbmalloc-oom-" + std::to_string(getpid()) + "-dev0-", 0), 0u);
    trace::Trace t = trace::read_trace_file(files[0]);
    if (cap == 16) EXPECT_LE(t.devices.at(0).events.size(), cap);
    if (cap == 16) EXPECT_GE(t.devices.at(0).events.size(), cap / 2);
    expect_consistent_dump(files[0], at_oom, failed_request(t));

    // The summary: the figures, the segments holding cached memory, the
    // memory summary table, and the commands that render the report later.
    const std::string summary = testing::slurp(files[1]);
    for (const std::string& want : {std::string("failed request"), std::string("largest free block"),
                                    std::string("segments at the failure"), std::string("GPU reserved memory"),
                                    "hbmalloc report " + files[0], "hbmalloc explain " + files[0]})
      EXPECT_NE(summary.find(want), std::string::npos) << want << " missing from\n" << summary;
    EXPECT_EQ(summary.find("hbmalloc fragmentation report"), std::string::npos) << "the runtime renders no report";
    if (cap == 16) {  // the report the summary names, rendered by the command line
      const testing::CliResult r = testing::run_cli("report " + files[0]);
      EXPECT_EQ(r.code, 0) << r.err;
      EXPECT_NE(r.out.find("hbmalloc fragmentation report"), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("Requests the recording failed"), std::string::npos) << r.out;
    }

    // Still usable; a second OOM writes a second dump.
    rig.allocator->check_invariants();
    void* p = rig.allocator->malloc(4096);
    rig.allocator->free(p);
    std::string again = run_to_oom(*rig.allocator, *rig.sim, 6);
    std::vector<std::string> second = dump_files(again);
    ASSERT_EQ(second.size(), 2u) << again;
    EXPECT_NE(second[0], files[0]);
    expect_consistent_dump(second[0], rig.allocator->stats(), failed_request(trace::read_trace_file(second[0])));
  }
}

TEST(Recorder, BadPathsAreClearErrors) {
  fs::path dir = temp_dir("bad");
  try {
    Recorder r(RecorderOptions{"/nonexistent-hbm-dir/x.hbt", "", 0});
    FAIL() << "opened a file in a directory that does not exist";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-hbm-dir/x.hbt"), std::string::npos) << e.what();
  }
  // A dump directory under a regular file cannot be created: the OOM says so.
  std::ofstream(dir / "file") << "x";
  Rig rig = make_rig(64ull << 20);
  auto recorder = std::make_shared<Recorder>(RecorderOptions{"", (dir / "file" / "dumps").string(), 1000});
  rig.allocator->attach_recorder(recorder);
  std::string text = run_to_oom(*rig.allocator, *rig.sim, 9);
  EXPECT_NE(text.find("OOM dump failed"), std::string::npos) << text;
  EXPECT_NE(text.find((dir / "file" / "dumps").string()), std::string::npos) << text;
  EXPECT_NE(text.find("tried to allocate"), std::string::npos) << text;
  rig.allocator->check_invariants();
  rig.allocator->free(rig.allocator->malloc(1 << 20));
}

TEST(Recorder, FailedWriteIsReportedWhenTheFileStops) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  Rig rig = make_rig(0);
  auto recorder = std::make_shared<Recorder>(RecorderOptions{"/dev/full", "", 0});
  rig.allocator->attach_recorder(recorder);
  Driver driver(*rig.allocator, *rig.sim, 3);
  driver.run(3000);  // allocations go on when the trace cannot be written
  try {
    recorder->stop_file();
    FAIL() << "a write to /dev/full succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full"), std::string::npos) << e.what();
  }
  rig.allocator->check_invariants();
}

}  // namespace
}  // namespace hbmalloc

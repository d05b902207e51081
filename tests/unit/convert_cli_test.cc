// End-to-end tests of `hbmalloc convert`: shared snapshots through .hbt and
// .jsonl and back to a PyTorch pickle keep the replay's figures to the byte,
// so does a live recording converted for memory_viz; usage errors and bad
// input exit 2 with one line naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/sim_backend.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/recorder.hpp"
#include "support/cli_run.h"
#include "support/scratch.h"

namespace {

namespace fs = std::filesystem;
using hbmalloc::testing::CliResult;
using hbmalloc::testing::expect_bad_input;
using hbmalloc::testing::run_cli;

using hbmalloc::testing::scratch_dir;

struct Figures {
  uint64_t events = 0, peak_requested = 0, native_peak_reserved = 0;
  bool operator==(const Figures&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Figures& f) {
  return out << "{events " << f.events << ", peak_requested " << f.peak_requested << ", native.peak_reserved "
             << f.native_peak_reserved << "}";
}

Figures replayed(const fs::path& file, int device) {
  CliResult r = run_cli("replay " + file.string() + " --json --device " + std::to_string(device));
  EXPECT_EQ(r.code, 0) << file << ": " << r.err;
  if (r.code != 0) return {};
  nlohmann::json j = nlohmann::json::parse(r.out);
  return {j["events"].get<uint64_t>(), j["peak_requested"].get<uint64_t>(),
          j["native"]["peak_reserved"].get<uint64_t>()};
}

void convert(const fs::path& in, const fs::path& out) {
  CliResult r = run_cli("convert " + in.string() + " " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(out.string()), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

// IN -> .hbt -> .jsonl -> .pickle, and IN -> .jsonl -> .hbt -> .pkl: every
// step replays to IN's figures on each device.
void expect_round_trips(const fs::path& in, const std::vector<int>& devices, const fs::path& dir) {
  const std::vector<fs::path> chain = {in, dir / "a.hbt", dir / "b.jsonl", dir / "c.pickle",
                                       dir / "d.jsonl", dir / "e.hbt", dir / "f.pkl"};
  convert(chain[0], chain[1]);
  convert(chain[1], chain[2]);
  convert(chain[2], chain[3]);
  convert(chain[0], chain[4]);
  convert(chain[4], chain[5]);
  convert(chain[5], chain[6]);
  for (int device : devices) {
    const Figures want = replayed(in, device);
    EXPECT_GT(want.peak_requested, 0u);
    for (size_t i = 1; i < chain.size(); ++i)
      EXPECT_EQ(replayed(chain[i], device), want) << chain[i] << " device " << device;
  }
}

TEST(ConvertCli, SharedSnapshotsRoundTripThroughEveryFormat) {
  const fs::path shared = hbmalloc::testing::shared_traces();
  ASSERT_TRUE(fs::exists(shared)) << "../shared/traces must be beside the repository: no " << shared;
  struct Case {
    const char* file;
    std::vector<int> devices;
  };
  // Three devices with expandable segments and an OOM; hundreds of segment
  // frees (empty_cache); a small one.
  for (const Case& c : {Case{"codelocation_memory_snapshot.pickle", {0, 1}},
                        Case{"sqattn_cuda_memory_snapshot.pickle", {0}}, Case{"eornn_snapshot.pickle", {0}}}) {
    SCOPED_TRACE(c.file);
    expect_round_trips(shared / "snapshots" / c.file, c.devices, scratch_dir(fs::path(c.file).stem().string()));
  }
}

TEST(ConvertCli, LiveRecordingOpensAsAPytorchSnapshot) {
  const fs::path dir = scratch_dir("live");
  {
    const uint64_t capacity = 512ull << 20;
    auto sim = std::make_unique<hbmalloc::SimBackend>(0, capacity);
    hbmalloc::SimBackend& streams = *sim;
    hbmalloc::Allocator a(hbmalloc::Config::parse("backend:sim"), std::move(sim));
    auto recorder = std::make_shared<hbmalloc::Recorder>(hbmalloc::RecorderOptions{(dir / "live.hbt").string(), "", 0});
    a.attach_recorder(recorder);
    std::vector<void*> live;
    for (int i = 0; i < 400; ++i) {
      live.push_back(a.malloc(uint64_t(1000 + (i * 7919) % (i % 5 == 0 ? (24 << 20) : (300 << 10))), i % 2));
      if (i % 3 == 2) {
        if (i % 9 == 2) {
          streams.hold_stream(5);
          a.record_stream(live.front(), 5);
        }
        a.free(live.front());
        live.erase(live.begin());
      }
      if (i == 200) {
        streams.complete_stream(5);
        a.empty_cache();
      }
    }
    recorder->stop_file();
  }
  convert(dir / "live.hbt", dir / "live.pickle");
  convert(dir / "live.pickle", dir / "again.hbt");
  const Figures want = replayed(dir / "live.hbt", 0);
  EXPECT_GT(want.native_peak_reserved, 0u);
  EXPECT_EQ(replayed(dir / "live.pickle", 0), want);
  EXPECT_EQ(replayed(dir / "again.hbt", 0), want);
}

// The synthetic example and the old profiler trace carry no addresses: their
// snapshot takes a cca replay's, so it reads back (no two blocks at 0x0) with
// the same requests, and every block sits inside a segment.
TEST(ConvertCli, TracesWithoutAddressesGetAReplaysAddresses) {
  const fs::path dir = scratch_dir("convert_addresses");
  const fs::path example = fs::path(HBMALLOC_SOURCE_DIR) / "examples" / "gpt_train.hbt";
  const fs::path profiler = hbmalloc::testing::shared_traces() / "kineto" /
                            "kineto_tbplugin_resnet50_nw0_worker0.1623143089861.pt.trace.json.gz";
  for (const fs::path& in : {example, profiler}) {
    SCOPED_TRACE(in.filename().string());
    const fs::path out = dir / (in.stem().string() + ".pickle");
    CliResult c = run_cli("convert " + in.string() + " " + out.string());
    ASSERT_EQ(c.code, 0) << c.err;
    EXPECT_NE(c.out.find("addresses and segments from a replay"), std::string::npos) << c.out;
    CliResult info = run_cli("info " + out.string() + " --json");
    ASSERT_EQ(info.code, 0) << info.err;
    const nlohmann::json j = nlohmann::json::parse(info.out);
    EXPECT_GT(j["devices"][0]["actions"]["segment_alloc"].get<uint64_t>(), 0u);
    // The same requests: peak requested to the byte.
    const auto peak = [](const fs::path& f) {
      CliResult r = run_cli("replay " + f.string() + " --json");
      EXPECT_EQ(r.code, 0) << r.err;
      return nlohmann::json::parse(r.out)["peak_requested"].get<uint64_t>();
    };
    EXPECT_EQ(j["devices"][0]["peak_requested"].get<uint64_t>(), peak(in));
    EXPECT_EQ(peak(out), peak(in));
  }
}

TEST(ConvertCli, UsageErrors) {
  expect_bad_input(run_cli("convert"), "wants IN and OUT");
  expect_bad_input(run_cli("convert only-one"), "wants IN and OUT");
  expect_bad_input(run_cli("convert a b c"), "wants IN and OUT");
  expect_bad_input(run_cli("convert in.pickle out.txt"), "out.txt");
  expect_bad_input(run_cli("convert in.pickle out"), ".pickle or .pkl");
  expect_bad_input(run_cli("convert in.pickle out.hbt --frobnicate"), "--frobnicate");
  CliResult help = run_cli("help");
  EXPECT_NE(help.out.find("convert IN OUT"), std::string::npos) << help.out;
}

TEST(ConvertCli, BadInputIsOneLineNamingTheFile) {
  const fs::path dir = scratch_dir("bad");
  expect_bad_input(run_cli("convert /nonexistent/in.pickle " + (dir / "out.hbt").string()), "/nonexistent/in.pickle");
  const fs::path random = dir / "random.bin";
  std::ofstream(random, std::ios::binary) << hbmalloc::testing::noise_bytes(4096);
  expect_bad_input(run_cli("convert " + random.string() + " " + (dir / "out.jsonl").string()), random.string());
  EXPECT_FALSE(fs::exists(dir / "out.jsonl")) << "nothing is written from bad input";
  std::ofstream(dir / "cut.hbt", std::ios::binary) << "\x89HBT\r\n\x1a\n";
  expect_bad_input(run_cli("convert " + (dir / "cut.hbt").string() + " " + (dir / "out.pickle").string()),
                   (dir / "cut.hbt").string());
  // A good input but an output that cannot be created names the output.
  const fs::path shared = hbmalloc::testing::shared_traces();
  if (!fs::exists(shared)) return;
  expect_bad_input(run_cli("convert " + (shared / "snapshots" / "eornn_snapshot.pickle").string() +
                           " /nonexistent/out.hbt"),
                   "/nonexistent/out.hbt");
}

}  // namespace

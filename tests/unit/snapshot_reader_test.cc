// read_pytorch_snapshot against the real snapshots in ../shared/traces (the
// README's table, parsed at test time, is the truth) and against hostile,
// broken and corrupt pickles built here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>

#include "hbmalloc/error.hpp"
#include "support/slurp.h"
#include "record/pickle_writer.h"
#include "trace/read_trace.h"

namespace hbmalloc::trace {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

const fs::path kTraces = fs::path(HBMALLOC_SOURCE_DIR) / ".." / "shared" / "traces";

using testing::slurp;

Trace read_file(const fs::path& p) {
  const std::string bytes = slurp(p);
  return read_pytorch_snapshot(bytes, p.filename().string());
}

std::string error_of(const std::string& bytes, const std::string& source = "bad.pickle") {
  try {
    read_pytorch_snapshot(bytes, source);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(bytes, needle)                                              \
  do {                                                                           \
    const std::string what_ = error_of(bytes);                                   \
    EXPECT_NE(what_.find(needle), std::string::npos) << "error: '" << what_ << "'"; \
    EXPECT_NE(what_.find("bad.pickle: "), std::string::npos) << what_;           \
  } while (0)

struct Row {
  std::string file;
  uint64_t events, segment_events, peak_requested, native_peak_reserved;
};

// The rows of the snapshots/ table in ../shared/traces/README.md.
std::vector<Row> readme_rows() {
  std::vector<Row> rows;
  std::ifstream readme(kTraces / "README.md");
  const std::regex row(R"(^\| (\S+\.(?:pickle|pkl)) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|)");
  std::string line;
  std::smatch m;
  while (std::getline(readme, line))
    if (std::regex_search(line, m, row))
      rows.push_back({m[1], std::stoull(m[2]), std::stoull(m[3]), std::stoull(m[4]), std::stoull(m[5])});
  return rows;
}

#define REQUIRE_TRACES() \
  ASSERT_TRUE(fs::exists(kTraces / "README.md")) << "../shared/traces must be beside the repository: no " << kTraces

TEST(SnapshotReader, EveryReadmeRowToTheByte) {
  REQUIRE_TRACES();
  const std::vector<Row> rows = readme_rows();
  ASSERT_GE(rows.size(), 30u);
  for (const Row& r : rows) {
    SCOPED_TRACE(r.file);
    const Trace t = read_file(kTraces / "snapshots" / r.file);
    EXPECT_EQ(t.format, "pytorch-snapshot");
    EXPECT_EQ(t.recorder, "pytorch");
    EXPECT_TRUE(t.has_history);
    const DeviceTrace* d = t.device(0);
    ASSERT_NE(d, nullptr);
    const TraceFigures f = figures_of(*d);
    EXPECT_EQ(f.events, r.events);
    EXPECT_EQ(f.segment_events, r.segment_events);
    EXPECT_EQ(f.peak_requested, r.peak_requested);
    ASSERT_TRUE(f.native_peak_reserved.has_value());
    EXPECT_EQ(*f.native_peak_reserved, r.native_peak_reserved);

    // Ids are dense: live blocks first, then one per alloc; every free names one.
    ASSERT_TRUE(d->has_segment_picture);
    uint32_t next = static_cast<uint32_t>(d->live_at_start.size());
    for (uint32_t i = 0; i < d->live_at_start.size(); ++i) EXPECT_EQ(d->live_at_start[i].id, i);
    for (const Event& e : d->events) {
      if (e.action == Action::kAlloc) {
        EXPECT_EQ(e.id, next++);
      } else if (e.action == Action::kFree || e.action == Action::kFreeRequested) {
        EXPECT_LT(e.id, next);
      }
    }
    EXPECT_EQ(d->block_count, next);
    // The final picture's live blocks carry the ids live at the end.
    for (const SegmentInfo& s : d->segments_at_end)
      for (const BlockInfo& b : s.blocks) EXPECT_EQ(b.id == kNoBlock, b.state == BlockState::kInactive);
  }
}

TEST(SnapshotReader, CodelocationHasThreeDevicesAndAnOom) {
  REQUIRE_TRACES();
  const Trace t = read_file(kTraces / "snapshots" / "codelocation_memory_snapshot.pickle");
  ASSERT_GE(t.devices.size(), 3u);
  for (size_t i = 0; i < t.devices.size(); ++i) EXPECT_EQ(t.devices[i].device, static_cast<int>(i));
  const DeviceTrace* d1 = t.device(1);
  ASSERT_NE(d1, nullptr);
  auto oom = std::find_if(d1->events.begin(), d1->events.end(), [](const Event& e) { return e.action == Action::kOom; });
  ASSERT_NE(oom, d1->events.end());
  EXPECT_EQ(oom->size, 5308694528u);
  EXPECT_EQ(oom->addr, 95682560u);  // device_free
  EXPECT_EQ(figures_of(*d1).native_ooms, 1u);
  // Expandable segments: map/unmap undone rebuilds what device 1 held at start.
  uint64_t start = 0;
  for (const SegmentInfo& s : d1->segments_at_start) {
    EXPECT_TRUE(s.expandable);
    start += s.size;
  }
  uint64_t end = 0;
  for (const SegmentInfo& s : d1->segments_at_end) end += s.size;
  int64_t delta = 0;
  for (const Event& e : d1->events) {
    if (e.action == Action::kSegmentMap) delta += static_cast<int64_t>(e.size);
    if (e.action == Action::kSegmentUnmap) delta -= static_cast<int64_t>(e.size);
  }
  EXPECT_EQ(static_cast<int64_t>(end - start), delta);
  // Settings flattened to text, nested ones as JSON.
  bool expandable = false, divisions = false;
  for (const auto& [k, v] : t.settings) {
    if (k == "expandable_segments") expandable = v == "True";
    if (k == "roundup_power2_divisions") divisions = v.rfind("{\"1\":0,\"2\":0,", 0) == 0;
    if (k == "garbage_collection_threshold") {
      EXPECT_EQ(v, "0.0");
    }
    if (k == "PYTORCH_CUDA_ALLOC_CONF") {
      EXPECT_EQ(v, "expandable_segments:True");
    }
  }
  EXPECT_TRUE(expandable);
  EXPECT_TRUE(divisions);
}

TEST(SnapshotReader, EveryStaticSnapshotReads) {
  REQUIRE_TRACES();
  int read = 0;
  for (const auto& entry : fs::directory_iterator(kTraces / "static")) {
    const std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    const std::string bytes = slurp(entry.path());
    if (name.starts_with("not_a_snapshot")) {
      try {
        read_pytorch_snapshot(bytes, name);
        ADD_FAILURE() << "read as a snapshot";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(name + ": not a PyTorch memory snapshot (no 'segments' list)"),
                  std::string::npos)
            << e.what();
      }
      continue;
    }
    const Trace t = read_pytorch_snapshot(bytes, name);
    ++read;
    EXPECT_FALSE(t.has_history);
    ASSERT_FALSE(t.devices.empty());
    size_t segments = 0;
    for (const DeviceTrace& d : t.devices) {
      EXPECT_TRUE(d.has_segment_picture);
      segments += d.segments_at_end.size();
      for (const SegmentInfo& s : d.segments_at_end) {
        uint64_t covered = 0;
        for (const BlockInfo& b : s.blocks) {
          EXPECT_EQ(b.addr, s.addr + covered);  // blocks tile the segment, old format included
          covered += b.size;
        }
        EXPECT_EQ(covered, s.size);
      }
    }
    if (name.starts_with("empty_")) {
      EXPECT_EQ(segments, 0u);
      EXPECT_EQ(figures_of(t.devices[0]).peak_requested, 0u);
    } else {
      EXPECT_GT(segments, 0u);
    }
  }
  EXPECT_GE(read, 20);
}

// --- pickles built here --------------------------------------------------------

struct Ev {
  const char* action;
  uint64_t addr;
  uint64_t size;
};
struct Blk {
  uint64_t size;
  const char* state;
};

// {'segments': [one segment at `seg_addr` holding `blocks`], 'device_traces': [events]}
std::string snapshot(uint64_t seg_addr, const std::vector<Blk>& blocks, const std::vector<Ev>& events,
                     bool with_block_addresses = true) {
  PickleWriter w;
  w.begin_dict();
  w.str("segments");
  w.begin_list();
  if (!blocks.empty()) {
    uint64_t total = 0;
    for (const Blk& b : blocks) total += b.size;
    w.begin_dict();
    w.str("device");
    w.integer(0);
    w.str("address");
    w.uinteger(seg_addr);
    w.str("total_size");
    w.uinteger(total);
    w.str("stream");
    w.integer(0);
    w.str("segment_type");
    w.str("large");
    w.str("blocks");
    w.begin_list();
    uint64_t at = seg_addr;
    for (const Blk& b : blocks) {
      w.begin_dict();
      if (with_block_addresses) {
        w.str("address");
        w.uinteger(at);
      }
      w.str("size");
      w.uinteger(b.size);
      w.str("state");
      w.str(b.state);
      w.end();
      at += b.size;
    }
    w.end();
    w.end();
  }
  w.end();
  w.str("device_traces");
  w.begin_list();
  w.begin_list();
  for (const Ev& e : events) {
    w.begin_dict();
    w.str("action");
    w.str(e.action);
    w.str("addr");
    w.uinteger(e.addr);
    w.str("size");
    w.uinteger(e.size);
    w.str("stream");
    w.integer(0);
    w.end();
  }
  w.end();
  w.end();
  w.end();
  return w.finish();
}

constexpr uint64_t kSeg = 0x7f0000000000;

TEST(SnapshotReader, ReconstructsTheStartFromASmallTrace) {
  // Final: A (live, 512 B, no requested_size: taken as size) and an inactive
  // tail. Trace: B freed (so live at start), A allocated, C allocated and freed.
  const std::string bytes = snapshot(kSeg, {{512, "active_allocated"}, {1536, "inactive"}},
                                     {{"free_requested", 0x1000, 100},
                                      {"free_completed", 0x1000, 100},
                                      {"alloc", kSeg, 500},
                                      {"alloc", 0x2000, 300},
                                      {"free_requested", 0x2000, 300},
                                      {"free_completed", 0x2000, 300},
                                      {"segment_alloc", kSeg, 2048}},
                                     /*with_block_addresses=*/false);
  const Trace t = read_pytorch_snapshot(bytes, "small.pickle");
  ASSERT_EQ(t.devices.size(), 1u);
  const DeviceTrace& d = t.devices[0];
  ASSERT_EQ(d.live_at_start.size(), 1u);
  EXPECT_EQ(d.live_at_start[0].addr, 0x1000u);
  EXPECT_EQ(d.live_at_start[0].requested, 100u);
  EXPECT_EQ(d.live_at_start[0].state, BlockState::kActiveAllocated);
  EXPECT_EQ(d.events[0].id, 0u);
  EXPECT_EQ(d.events[1].id, 0u);
  EXPECT_EQ(d.events[2].id, 1u);
  EXPECT_EQ(d.events[3].id, 2u);
  EXPECT_EQ(d.events[5].id, 2u);
  EXPECT_EQ(d.block_count, 3u);
  EXPECT_TRUE(d.segments_at_start.empty());  // the segment_alloc undone
  ASSERT_EQ(d.segments_at_end.size(), 1u);
  EXPECT_EQ(d.segments_at_end[0].blocks[0].id, 1u);
  EXPECT_EQ(d.segments_at_end[0].blocks[1].addr, kSeg + 512);  // address from the tiling
  const TraceFigures f = figures_of(d);
  EXPECT_EQ(f.peak_requested, 100u + 500u + 300u - 100u);
  EXPECT_EQ(f.native_peak_reserved, 2048u);
  EXPECT_EQ(f.segment_events, 1u);
}

// A block live at start that the trace frees has no size in the snapshot;
// PyTorch kept an unsplit remainder with it. Free blocks coalesce, so a later
// alloc right after it (no live block between) says where it ends: here the
// 2.5 MiB request sat in a 3.125 MiB block, the 1.875 MiB gap after it being
// the free block the 1.25 MiB alloc took whole (Hyperion-shuo_..._bf16's case).
TEST(SnapshotReader, AStartBlockEndsWhereTheNextAllocBegins) {
  constexpr uint64_t kMiB = 1 << 20;
  const uint64_t start_block = kSeg, next = kSeg + 3276800, other = kSeg + 10 * kMiB;
  const std::string bytes = snapshot(kSeg,
                                     {{3276800, "inactive"}, {1966080, "active_allocated"},
                                      {20 * kMiB - 3276800 - 1966080, "inactive"}},
                                     {{"alloc", next, 1310720},
                                      {"alloc", other, 2 * kMiB},  // its start block ends nowhere near: left alone
                                      {"free_requested", other, 2 * kMiB},
                                      {"free_completed", other, 2 * kMiB},
                                      {"free_requested", start_block, 2621440},
                                      {"free_completed", start_block, 2621440}});
  const Trace t = read_pytorch_snapshot(bytes, "unsplit.pickle");
  const DeviceTrace& d = t.devices[0];
  ASSERT_EQ(d.live_at_start.size(), 1u);
  EXPECT_EQ(d.live_at_start[0].addr, start_block);
  EXPECT_EQ(d.live_at_start[0].requested, 2621440u);
  EXPECT_EQ(d.live_at_start[0].size, 3276800u) << "the block reaches the next alloc";

  // Without a later alloc after it, the size stays unknown (the policy rounds).
  const std::string alone = snapshot(kSeg, {{20 * kMiB, "inactive"}},
                                     {{"free_requested", start_block, 2621440}, {"free_completed", start_block, 2621440}});
  EXPECT_EQ(read_pytorch_snapshot(alone, "alone.pickle").devices[0].live_at_start[0].size, 0u);
}

TEST(SnapshotReader, PendingFreeAtStart) {
  // free_completed with no free_requested in the trace: it was requested before.
  const Trace t = read_pytorch_snapshot(snapshot(kSeg, {}, {{"free_completed", 0x1000, 64}}), "p.pickle");
  ASSERT_EQ(t.devices[0].live_at_start.size(), 1u);
  EXPECT_EQ(t.devices[0].live_at_start[0].state, BlockState::kActivePendingFree);
  EXPECT_FALSE(t.has_history);  // no alloc: nothing to replay
}

TEST(SnapshotReader, FreeOfAnAddressThatIsNotLiveIsAnError) {
  EXPECT_ERROR(snapshot(kSeg, {}, {{"alloc", 0x1000, 64}, {"free_completed", 0x1000, 64}, {"free_completed", 0x1000, 64}}),
               "device 0 event 2 (free_completed 0x1000, 64 bytes): free_completed of 0x1000, which is not live");
  EXPECT_ERROR(snapshot(kSeg, {}, {{"alloc", 0x1000, 64}, {"alloc", 0x1000, 64}}),
               "event 1 (alloc 0x1000, 64 bytes): alloc at an address whose block is still live");
  // Allocated, never freed, yet not in the final picture.
  EXPECT_ERROR(snapshot(kSeg, {}, {{"alloc", 0x1000, 64}}), "live at the end of the trace but not in the final segments");
  // Live in the final picture, but the trace's last word on it is a free.
  EXPECT_ERROR(snapshot(kSeg, {{64, "active_allocated"}}, {{"free_completed", kSeg, 64}}),
               "the final segments hold a live block at 0x7f0000000000 that the trace frees");
}

TEST(SnapshotReader, SegmentEventsThatDoNotFitAreErrors) {
  EXPECT_ERROR(snapshot(kSeg, {}, {{"segment_alloc", kSeg, 2048}}), "event 0 (segment_alloc");
  EXPECT_ERROR(snapshot(kSeg, {{2048, "inactive"}}, {{"segment_free", kSeg + 1024, 2048}}), "overlaps a segment");
  EXPECT_ERROR(snapshot(kSeg, {{2048, "inactive"}}, {{"segment_map", kSeg + 1024, 2048}}),
               "no segment holds the mapped range");
}

TEST(SnapshotReader, NotASnapshot) {
  PickleWriter w;
  w.begin_dict();
  w.str("segments");
  w.integer(3);
  w.end();
  EXPECT_ERROR(w.finish(), "not a PyTorch memory snapshot (no 'segments' list)");
  PickleWriter list;
  list.begin_list();
  list.integer(1);
  list.end();
  EXPECT_ERROR(list.finish(), "not a PyTorch memory snapshot");
  EXPECT_ERROR("\x80\x04N."s, "not a PyTorch memory snapshot");
}

TEST(SnapshotReader, WrongTypesInsideNameTheirPath) {
  PickleWriter w;
  w.begin_dict();
  w.str("segments");
  w.begin_list();
  w.begin_dict();
  w.str("address");
  w.str("0x1000");
  w.end();
  w.end();
  w.end();
  EXPECT_ERROR(w.finish(), "segments[0]: 'address' is a str, not an int");
  EXPECT_ERROR(snapshot(kSeg, {{64, "weird"}}, {}), "segments[0].blocks[0]: unknown block state 'weird'");
  EXPECT_ERROR(snapshot(kSeg, {}, {{"alloc", UINT64_MAX - 4, 64}}), "device_traces[0][0]: addr + size overflows");
}

TEST(SnapshotReader, HostilePicklesAreRefusedByOpcode) {
  EXPECT_ERROR("\x80\x02\x63os\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03."s, "GLOBAL at offset 2");
  EXPECT_ERROR("\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02ls\x94\x85\x94R\x94."s,
               "STACK_GLOBAL at offset 25");
  // A snapshot-shaped dict whose value is built by REDUCE.
  EXPECT_ERROR("\x80\x04}\x8c\x08segments](tRu."s, "REDUCE at offset 16");
}

TEST(SnapshotReader, EveryTruncationIsAnError) {
  const std::string bytes = snapshot(kSeg, {{512, "active_allocated"}, {512, "inactive"}},
                                     {{"alloc", kSeg, 500}, {"alloc", 0x2000, 300}, {"free_completed", 0x2000, 300}});
  ASSERT_NO_THROW(read_pytorch_snapshot(bytes, "ok.pickle"));
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_NE(error_of(bytes.substr(0, n)), "") << "prefix " << n;
}

TEST(SnapshotReader, RandomBytesAndFlippedBytes) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(rng() % 200, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    EXPECT_NE(error_of(bytes), "");
  }
  // One flipped byte in a valid snapshot: a Trace or an Error, never a crash.
  const std::string good = snapshot(kSeg, {{512, "active_allocated"}}, {{"alloc", kSeg, 500}});
  for (int i = 0; i < 5000; ++i) {
    std::string bytes = good;
    bytes[rng() % bytes.size()] = static_cast<char>(rng());
    try {
      read_pytorch_snapshot(bytes, "flip.pickle");
    } catch (const Error&) {
    }
  }
}

TEST(SnapshotReader, DeepNesting) {
  // {'segments': [[[[...]]]]} a million lists deep, built without MARKs.
  std::string deep = "\x80\x04}\x8c\x08segments"s;
  for (int i = 0; i < 1'000'000; ++i) deep += "]";
  for (int i = 0; i < 1'000'000 - 1; ++i) deep += "a";
  deep += "s.";
  EXPECT_ERROR(deep, "segments[0] is a list, not a dict");
  EXPECT_ERROR("\x80\x04"s + std::string(50'000, '(') + ".", "nesting deeper than 10000");
}

TEST(SnapshotReader, SelfContainingSettingsRenderBounded) {
  // allocator_settings = d where d['self'] = d: rendering must stop.
  const std::string bytes = "\x80\x04}\x94(\x8c\x08segments]\x8c\x12" "allocator_settings}\x94\x8c\x04self" "h\x01su."s;
  const Trace t = read_pytorch_snapshot(bytes, "cycle.pickle");
  ASSERT_EQ(t.settings.size(), 1u);
  EXPECT_EQ(t.settings[0].first, "self");
  EXPECT_NE(t.settings[0].second.find("\"...\""), std::string::npos);
  EXPECT_LT(t.settings[0].second.size(), 8192u);

  // d['self'] = d; d[d] = d: container keys are named, not rendered (their
  // escaped text would double at each level; the fuzzer found it).
  const std::string keyed =
      "\x80\x04}\x94(\x8c\x08segments]\x8c\x12" "allocator_settings}\x94\x8c\x04self" "h\x01sh\x01h\x01su."s;
  const Trace k = read_pytorch_snapshot(keyed, "keys.pickle");
  ASSERT_EQ(k.settings.size(), 2u);
  EXPECT_EQ(k.settings[1].first.rfind("{\"self\":", 0), 0u);
  for (const auto& [key, value] : k.settings) {
    EXPECT_LT(key.size(), 16384u);
    EXPECT_LT(value.size(), 16384u);
    EXPECT_NE(value.find("\"<dict>\":"), std::string::npos) << value.substr(0, 200);
  }
}

}  // namespace
}  // namespace hbmalloc::trace

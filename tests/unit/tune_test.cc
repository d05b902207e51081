// Unit tests for analysis/tune/: knob grids (defaults, --grid text, the
// combinations and what is left out), ready *_CONF lines, the ranking, and a
// parallel sweep giving what a one-thread sweep gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "hbmalloc/error.hpp"
#include "tune/grid.h"
#include "tune/sweep.h"

namespace hbmalloc::tune {
namespace {

constexpr uint64_t kMiB = uint64_t(1) << 20;

std::string ErrorOf(std::string_view policy, std::string_view text) {
  try {
    parse_grid(policy, text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig);
    return e.what();
  }
  ADD_FAILURE() << "'" << text << "' parsed";
  return "";
}

TEST(TuneGrid, ParsesValuesAndListsWithTheirCommas) {
  Grid g = parse_grid("cca", "max_split_size_mb:unset|128 | 256,roundup_power2_divisions:4|[256:1,>:8]");
  ASSERT_EQ(g.knobs.size(), 2u);
  EXPECT_EQ(g.knobs[0].values, (std::vector<std::string>{"unset", "128", "256"}));
  EXPECT_EQ(g.knobs[1].values, (std::vector<std::string>{"4", "[256:1,>:8]"}));
  EXPECT_EQ(parse_grid("hbm", "slab_size:1MiB|2MiB").knobs[0].values.size(), 2u);
}

TEST(TuneGrid, BadGridsNameTheProblem) {
  EXPECT_NE(ErrorOf("cca", "max_split_size_mb:10").find("must be >= 20"), std::string::npos);
  EXPECT_NE(ErrorOf("cca", "small_size:1MiB").find("not a knob of policy cca"), std::string::npos);
  EXPECT_NE(ErrorOf("hbm", "max_split_size_mb:64").find("not a knob of policy hbm"), std::string::npos);
  EXPECT_NE(ErrorOf("hbm", "bogus:1").find("bogus"), std::string::npos);
  EXPECT_NE(ErrorOf("cca", "capacity:1GiB").find("not a knob to tune"), std::string::npos);
  EXPECT_NE(ErrorOf("hbm", "sim_lag:1ms|0").find("not a knob to tune"), std::string::npos);
  EXPECT_NE(ErrorOf("cca", "expandable_segments:True||False").find("empty value"), std::string::npos);
  EXPECT_NE(ErrorOf("cca", "").find("no knob"), std::string::npos);
  EXPECT_NE(ErrorOf("xyz", "a:1").find("unknown policy"), std::string::npos);
}

TEST(TuneGrid, ExpandPutsTheBaselineFirstAndLeavesOutRepeats) {
  size_t skipped = 0;
  // The trace recorded expandable segments: the baseline keeps them.
  std::vector<Point> pts = expand(parse_grid("cca", "expandable_segments:False|True,max_split_size_mb:unset|64"),
                                  {{"expandable_segments", "True"}}, skipped);
  ASSERT_EQ(pts.size(), 4u);
  EXPECT_TRUE(pts[0].baseline);
  EXPECT_EQ(pts[0].settings, (std::vector<std::pair<std::string, std::string>>{{"expandable_segments", "True"}}));
  EXPECT_EQ(skipped, 1u);  // True,unset is the baseline again
  EXPECT_TRUE(pts[1].settings.empty()) << "False is the default: nothing set";
  for (const Point& p : pts) EXPECT_EQ(p.config.policy, "cca");
}

TEST(TuneGrid, GarbageCollectionWithoutAFractionIsTheSameAsNone) {
  size_t skipped = 0;
  std::vector<Point> pts =
      expand(parse_grid("cca", "garbage_collection_threshold:unset|0.6,per_process_memory_fraction:unset|0.9"), {}, skipped);
  // unset/unset, unset/0.9, 0.6/0.9; 0.6 alone never runs.
  EXPECT_EQ(pts.size(), 3u);
  EXPECT_EQ(skipped, 2u);  // the baseline repeated, and 0.6 without a fraction
}

TEST(TuneGrid, HbmKnobsThatDoNothingTogetherAreLeftOut) {
  size_t skipped = 0;
  std::vector<Point> pts = expand(
      parse_grid("hbm", "vmm:unset|off,segment_round:unset|1MiB,remap:unset|never,pressure_threshold:unset|0.9"), {},
      skipped);
  // Page-mapped: remap pressure at two thresholds, remap never (no threshold);
  // plain segments: two segment_round values, no remap knob.
  EXPECT_EQ(pts.size(), 5u);
  for (const Point& p : pts) {
    bool off = false, round = false, remap_knob = false;
    for (const auto& [k, v] : p.settings) {
      off = off || (k == "vmm" && v == "off");
      round = round || k == "segment_round";
      remap_knob = remap_knob || k == "remap" || k == "pressure_threshold";
    }
    EXPECT_FALSE(round && !off) << conf_line(p);
    EXPECT_FALSE(remap_knob && off) << conf_line(p);
  }
}

TEST(TuneGrid, ConfigsThePolicyRefusesAreLeftOut) {
  size_t skipped = 0;
  std::vector<Point> pts = expand(parse_grid("hbm", "small_size:unset|256KiB,slab_size:unset|512KiB"), {}, skipped);
  EXPECT_EQ(pts.size(), 3u);  // the default 128 KiB slabs cannot hold 256 KiB small requests
  EXPECT_EQ(skipped, 2u);     // that, and the baseline repeated
}

TEST(TuneGrid, DefaultGridsAndReadyLines) {
  size_t skipped = 0;
  std::vector<Point> cca = expand(default_grid("cca"), {}, skipped);
  EXPECT_GE(cca.size(), 100u);
  std::vector<Point> hbm = expand(default_grid("hbm"), {}, skipped);
  EXPECT_GE(hbm.size(), 6u);
  Point p{"cca", false, {{"max_split_size_mb", "128"}, {"expandable_segments", "True"}}, Config::parse("policy:cca")};
  EXPECT_EQ(conf_line(p), "PYTORCH_CUDA_ALLOC_CONF=max_split_size_mb:128,expandable_segments:True");
  Point h{"hbm", false, {{"slab_size", "1MiB"}}, Config::parse("")};
  EXPECT_EQ(conf_line(h), "HBMALLOC_CONF=policy:hbm,slab_size:1MiB");
  EXPECT_THROW(default_grid("other"), Error);
}

TEST(TuneRank, FittingThenLeastReservedThenSimpler) {
  auto r = [](bool fits, uint64_t reserved, size_t keys, size_t index) {
    PointResult x;
    x.fits = fits;
    x.peak_reserved = reserved;
    x.point.settings.resize(keys);
    x.index = index;
    return x;
  };
  std::vector<PointResult> v = {r(false, 1, 0, 0), r(true, 9, 2, 1), r(true, 9, 1, 2), r(true, 5, 3, 3)};
  v.push_back(r(true, 1, 0, 4));
  v.back().error = "boom";
  std::sort(v.begin(), v.end(), ranks_before);
  EXPECT_EQ(v[0].index, 3u);
  EXPECT_EQ(v[1].index, 2u);
  EXPECT_EQ(v[2].index, 1u);
  EXPECT_EQ(v[3].index, 0u);
  EXPECT_EQ(v[4].index, 4u) << "a point whose replay failed comes last";
}

TEST(TuneRank, PointsThatDoNotFitRankByTheDeviceTheyNeed) {
  auto r = [](uint64_t reserved, uint64_t min_capacity, size_t index) {
    PointResult x;
    x.fits = false;
    x.peak_reserved = reserved;
    x.min_capacity = min_capacity;
    x.index = index;
    return x;
  };
  // Reserving less at a capacity it overflows says little; needing less device says what to buy.
  std::vector<PointResult> v = {r(70, 90, 0), r(78, 83, 1), r(75, 85, 2)};
  std::sort(v.begin(), v.end(), ranks_before);
  EXPECT_EQ(v[0].index, 1u);
  EXPECT_EQ(v[1].index, 2u);
  EXPECT_EQ(v[2].index, 0u);
}

// A small trace whose best settings differ: a split-heavy pattern.
trace::Trace PatternTrace() {
  trace::Trace t;
  t.source = "pattern";
  t.format = "test";
  t.has_history = true;
  trace::DeviceTrace& d = t.devices.emplace_back();
  auto alloc = [&](uint64_t size) {
    uint32_t id = d.block_count++;
    d.events.push_back(trace::Event{0, 0, size, 0, id, trace::Action::kAlloc});
    return id;
  };
  auto free = [&](uint32_t id) { d.events.push_back(trace::Event{0, 0, 0, 0, id, trace::Action::kFree}); };
  for (int step = 0; step < 6; ++step) {
    std::vector<uint32_t> ids;
    for (int i = 0; i < 8; ++i) ids.push_back(alloc((30 + step * 7 + i) * kMiB + 4096));
    for (int i = 0; i < 8; i += 2) free(ids[i]);
    uint32_t big = alloc((200 + step * 13) * kMiB);
    for (int i = 1; i < 8; i += 2) free(ids[i]);
    free(big);
  }
  return t;
}

TEST(TuneSweep, ParallelGivesWhatOneThreadGives) {
  const trace::Trace t = PatternTrace();
  size_t skipped = 0;
  std::vector<Point> pts = expand(parse_grid("cca", "expandable_segments:False|True,max_split_size_mb:unset|64|256"),
                                  {}, skipped);
  SweepOptions one;
  one.threads = 1;
  one.capacity = 2048 * kMiB;
  SweepOptions many = one;
  many.threads = 4;
  uint64_t calls = 0, last = 0;
  many.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_LE(done, total);
    EXPECT_GE(done, last);
    last = done;
    ++calls;
  };
  std::vector<PointResult> a = sweep(t, pts, one), b = sweep(t, pts, many);
  ASSERT_EQ(a.size(), pts.size());
  ASSERT_EQ(b.size(), pts.size());
  EXPECT_GE(calls, 1u);
  EXPECT_EQ(last, pts.size()) << "the bar ends full";
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].index, b[i].index);
    EXPECT_EQ(a[i].peak_reserved, b[i].peak_reserved);
    EXPECT_EQ(a[i].min_capacity, b[i].min_capacity);
    EXPECT_TRUE(a[i].error.empty()) << a[i].error;
    EXPECT_TRUE(a[i].fits);
    EXPECT_GE(a[i].peak_reserved, a[i].peak_requested);
    ASSERT_TRUE(a[i].min_capacity.has_value());
    EXPECT_LE(*a[i].min_capacity, 2048 * kMiB);
  }
  EXPECT_LE(a.front().peak_reserved, a.back().peak_reserved);
  // Settings that change the pattern's reserved bytes: the grid is not flat.
  EXPECT_LT(a.front().peak_reserved, a.back().peak_reserved);
}

TEST(TuneSweep, PointsThatDoNotFitSayHowMuchTheyNeed) {
  const trace::Trace t = PatternTrace();
  size_t skipped = 0;
  std::vector<Point> pts = expand(parse_grid("cca", "expandable_segments:False|True"), {}, skipped);
  SweepOptions o;
  o.capacity = 64 * kMiB;
  for (const PointResult& r : sweep(t, pts, o)) {
    EXPECT_FALSE(r.fits);
    EXPECT_GT(r.ooms, 0u);
    ASSERT_TRUE(r.min_capacity.has_value());
    EXPECT_GT(*r.min_capacity, 64 * kMiB);
  }
  SweepOptions bad;
  bad.device = 3;
  EXPECT_THROW(sweep(t, pts, bad), Error);
}

}  // namespace
}  // namespace hbmalloc::tune

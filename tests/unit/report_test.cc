// Fragmentation reports: the data built from a replay and from a static
// snapshot, its JSON round trip, the text and the self-contained HTML.
//
// With HBMALLOC_REPORT_SAMPLE_DIR set, the sample reports are also written
// there as .html / .txt / .json (tests/report_screenshot.sh renders them).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>

#include "backend/sim_backend.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "replay/replay.h"
#include "report/advice.h"
#include "report/frag_report.h"
#include "report/html_report.h"
#include "report/json_report.h"
#include "report/layout_figures.h"
#include "report/svg_charts.h"
#include "report/text_report.h"
#include "trace/read_trace.h"
#include "synth/gpt_training.h"

namespace hbmalloc::report {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

// The allocator's layout just before `stop` (an event index), replaying only
// allocs and frees: the picture at the peak or at an OOM, for replay results
// that did not capture one.
Layout layout_before(const trace::Trace& t, const replay::ReplayOptions& o, uint64_t stop) {
  Config c = o.config;
  c.backend = "sim";
  Allocator a(c, std::make_unique<SimBackend>(0, o.capacity.value_or(0)));
  const trace::DeviceTrace& d = t.devices.at(0);
  std::vector<void*> ptrs(d.block_count, nullptr);
  for (uint64_t i = 0; i < stop && i < d.events.size(); ++i) {
    const trace::Event& e = d.events[i];
    if (e.action == trace::Action::kAlloc) {
      try {
        ptrs[e.id] = a.malloc(e.size, e.stream);
      } catch (const Error&) {
      }
    } else if (e.action == trace::Action::kFree && ptrs[e.id]) {
      a.free(ptrs[e.id]);
      ptrs[e.id] = nullptr;
    }
  }
  return a.layout();
}

struct Sample {
  trace::Trace trace;
  replay::ReplayResult result;
  ReportOptions options;
};

// A replay of the synthetic training trace, with timeline and segment maps.
Sample replay_sample(std::optional<uint64_t> capacity) {
  synth::GptOptions so;
  so.steps = 4;
  so.layers = 6;
  Sample s;
  s.trace = synth::gpt_training(so);
  replay::ReplayOptions o;
  o.config.backend = "sim";
  o.capacity = capacity;
  o.timeline_points = 2000;
  o.capture_layouts = true;
  s.result = replay::replay(s.trace, o);
  if (s.result.layout_at_peak.empty())
    s.result.layout_at_peak = layout_before(s.trace, o, s.result.peak_reserved_event + 1);
  for (replay::OomRecord& oom : s.result.ooms)
    if (oom.layout.empty()) oom.layout = layout_before(s.trace, o, oom.event);
  s.options.config = o.config;
  return s;
}

void write_sample(const std::string& name, const FragReport& r) {
  const char* dir = std::getenv("HBMALLOC_REPORT_SAMPLE_DIR");
  if (dir == nullptr) return;
  std::ofstream(std::string(dir) + "/" + name + ".html") << render_html(r);
  std::ofstream(std::string(dir) + "/" + name + ".txt") << render_text(r);
  std::ofstream(std::string(dir) + "/" + name + ".json") << nlohmann::json(r).dump(1);
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// A static snapshot: two large segments and a small one, blocks of every state.
trace::Trace snapshot_trace() {
  trace::Trace t;
  t.source = "snap.pickle";
  t.format = "pytorch-snapshot";
  t.recorder = "pytorch";
  t.capacity = 16 * kGiB;
  t.settings = {{"expandable_segments", "False"}};
  trace::DeviceTrace& d = t.devices.emplace_back();
  d.has_segment_picture = true;
  using S = trace::BlockState;
  const uint64_t a = 0x7f0000000000, b = a + 64 * kMiB, c = b + 20 * kMiB;
  // 64 MiB: 8 MiB live, 16 MiB free, 8 MiB pending free, 32 MiB free (the largest hole).
  d.segments_at_end.push_back({a, 64 * kMiB, 0, false, false,
                               {{0, a, 8 * kMiB, 8 * kMiB - 100, 0, S::kActiveAllocated},
                                {0, a + 8 * kMiB, 16 * kMiB, 0, 0, S::kInactive},
                                {0, a + 24 * kMiB, 8 * kMiB, 8 * kMiB, 0, S::kActivePendingFree},
                                {0, a + 32 * kMiB, 32 * kMiB, 0, 0, S::kInactive}}});
  // 20 MiB wholly free: releasable, so not a hole.
  d.segments_at_end.push_back({b, 20 * kMiB, 0, false, false, {{0, b, 20 * kMiB, 0, 0, S::kInactive}}});
  // 2 MiB small segment: one 512 B block, the rest not listed (a gap).
  d.segments_at_end.push_back({c, 2 * kMiB, 0, true, false, {{0, c, 512, 500, 0, S::kActiveAllocated}}});
  return t;
}

TEST(Report, ReplayReportHasTheReplayFigures) {
  Sample s = replay_sample(std::nullopt);
  FragReport r = build_report(s.trace, s.result, s.options);
  EXPECT_EQ(r.run.source, "synthetic gpt");
  EXPECT_FALSE(r.run.capacity);  // unlimited
  EXPECT_EQ(r.frag.peak_reserved, s.result.peak_reserved);
  EXPECT_EQ(r.frag.peak_requested, s.result.peak_requested);
  EXPECT_DOUBLE_EQ(r.frag.efficiency, s.result.efficiency);
  ASSERT_EQ(r.frag.moments.size(), 2u);  // at the peak, at the end
  // The map at the peak adds up to the peak reserved.
  EXPECT_EQ(r.frag.moments[0].reserved, s.result.peak_reserved);
  EXPECT_EQ(r.frag.moments[1].reserved, uint64_t(s.result.final_stats.reserved_bytes.all.current));
  EXPECT_LE(r.timeline.size(), ReportOptions{}.timeline_points);
  uint64_t timeline_peak = 0;
  for (const replay::TimelinePoint& p : r.timeline) timeline_peak = std::max(timeline_peak, p.usage.reserved);
  EXPECT_EQ(timeline_peak, s.result.peak_reserved) << "downsampling lost the peak";
  uint64_t histogram_count = 0;
  for (const SizeBucket& b : r.sizes) histogram_count += b.count;
  EXPECT_EQ(histogram_count, s.result.allocs);
  ASSERT_EQ(r.summary.rows.size(), 9u);
  EXPECT_EQ(r.summary.rows[3].name, "reserved_bytes");
  EXPECT_EQ(r.summary.rows[3].stat.all.peak, int64_t(s.result.peak_reserved));
  ASSERT_TRUE(r.native);
  EXPECT_EQ(r.native->peak_requested, s.result.peak_requested);
  EXPECT_FALSE(r.advice.empty());
  write_sample("replay", r);
}

// A run of random mallocs and frees (2 B to 2^max_log2 B) on one stream of the
// sim backend under `conf`, calling check(allocator, op) after every
// `every`-th operation; returns how many checks ran.
template <typename Check>
int RandomRun(const char* conf, uint64_t seed, int ops, int max_log2, int every, Check check) {
  Config c = Config::parse(conf);
  c.backend = "sim";
  auto backend = std::make_unique<SimBackend>(0, 0);
  backend->set_trace_time(0);
  Allocator a(c, std::move(backend));
  std::mt19937_64 rng(seed);
  std::vector<void*> live;
  int checked = 0;
  for (int op = 0; op < ops; ++op) {
    if (live.empty() || rng() % 5 < 3) {
      live.push_back(a.malloc(uint64_t(std::exp2(double(rng() % uint64_t(max_log2 * 100)) / 100.0)) + 1));
    } else {
      const size_t i = rng() % live.size();
      a.free(live[i]);
      live[i] = live.back();
      live.pop_back();
    }
    if (op % every == every - 1) {
      check(a, op);
      if (::testing::Test::HasFatalFailure()) break;
      ++checked;
    }
  }
  for (void* p : live) a.free(p);
  return checked;
}

// A moment's inactive split read off a layout is what the allocator's own
// statistics say (what empty_cache could not give back), page-mapped or
// plain: so the report's "peak reserved" and "end" columns mean one thing.
TEST(Report, InactiveSplitOffALayoutIsTheAllocatorsOwn) {
  for (const char* conf : {"", "vmm:off", "granule_size:4MiB"}) {
    SCOPED_TRACE(conf);
    const int checked = RandomRun(conf, 7, 4000, 26, 50, [](Allocator& a, int op) {
      if (op % 97 < 50) a.empty_cache();  // now and then, between checks
      const MomentFigures m = report::moment_of(a.layout(), "now");
      ASSERT_EQ(int64_t(m.inactive_split_bytes), a.stats().inactive_split_bytes.all.current) << "op " << op;
    });
    EXPECT_EQ(checked, 80);
  }
}

// What the layout says empty_cache cannot give back is what it leaves, under
// every policy: so each segment's layout carries its own page (PyTorch's
// expandable segments map the large pool in 20 MiB pages, hbm in granules).
// One stream, so no free waits on another's work.
TEST(Report, ALayoutsInactiveSplitIsWhatEmptyCacheLeaves) {
  for (const char* conf : {"", "vmm:off", "remap:always", "policy:cca", "policy:cca,expandable_segments:True",
                           "policy:cca,expandable_segments:True,large_segment_size_mb:40"}) {
    SCOPED_TRACE(conf);
    const int checked = RandomRun(conf, 11, 3000, 27, 60, [](Allocator& a, int op) {
      const MomentFigures m = report::moment_of(a.layout(), "before");
      a.empty_cache();
      const Stats s = a.stats();
      ASSERT_EQ(m.inactive_split_bytes, uint64_t(s.reserved_bytes.all.current - s.allocated_bytes.all.current))
          << "op " << op;
    });
    EXPECT_EQ(checked, 50);
  }
}

TEST(Report, JsonHasTheFieldsAndRoundTrips) {
  Sample s = replay_sample(std::nullopt);
  s.options.min_capacity = 3 * kGiB;
  FragReport r = build_report(s.trace, s.result, s.options);
  nlohmann::json j = nlohmann::json(r);
  EXPECT_TRUE(is_report_json(j));
  EXPECT_EQ(j["format"], "hbmalloc-report");
  EXPECT_EQ(j["run"]["source"], "synthetic gpt");
  EXPECT_TRUE(j["run"]["capacity"].is_null());
  EXPECT_EQ(j["fragmentation"]["peak_reserved"].get<uint64_t>(), s.result.peak_reserved);
  EXPECT_EQ(j["summary"]["rows"].size(), 9u);
  EXPECT_EQ(j["timeline"].size(), r.timeline.size());
  EXPECT_EQ(j["maps"][0]["title"], "peak reserved");
  EXPECT_FALSE(j["advice"].empty());

  FragReport back = report_from_json_text(j.dump(), "saved.json");
  EXPECT_EQ(nlohmann::json(back), j);
  EXPECT_EQ(render_text(back), render_text(r));
  EXPECT_EQ(render_html(back), render_html(r));
}

TEST(Report, BadJsonIsRefusedNamingTheField) {
  FragReport r = build_static_report(snapshot_trace(), 0);
  nlohmann::json good = nlohmann::json(r);
  auto message = [](const nlohmann::json& j) {
    try {
      report_from_json(j, "bad.json");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message(nlohmann::json::array()).find("bad.json: report field format"), std::string::npos);
  nlohmann::json j = good;
  j["run"].erase("capacity");
  EXPECT_NE(message(j).find("run.capacity: missing"), std::string::npos);
  j = good;
  j["fragmentation"]["peak_reserved"] = -1;
  EXPECT_NE(message(j).find("fragmentation.peak_reserved"), std::string::npos);
  j = good;
  j["maps"][0]["segments"][0]["blocks"][1][1] = 1;  // a block that no longer tiles its segment
  EXPECT_NE(message(j).find("maps[0].segments[0].blocks[2]: blocks do not tile"), std::string::npos) << message(j);
  j = good;
  j["maps"][0]["segments"][0]["blocks"][0][2] = 1.5;  // nlohmann alone would read 1
  EXPECT_NE(message(j).find("maps[0].segments[0].blocks[0][2]: expected a non-negative integer"), std::string::npos)
      << message(j);
  j = good;
  j["maps"][0]["segments"][0]["pool"] = "medium";
  EXPECT_NE(message(j).find("maps[0].segments[0].pool: expected \"small\" or \"large\""), std::string::npos)
      << message(j);
  j = good;
  j["summary"]["rows"][0]["all"] = {1, 2, 3};
  EXPECT_NE(message(j).find("summary.rows[0].all: expected [current, peak, allocated, freed]"), std::string::npos)
      << message(j);
  j = good;
  j["run"]["device"] = uint64_t(1) << 40;
  EXPECT_NE(message(j).find("run.device: out of range"), std::string::npos) << message(j);
  j = good;
  j["version"] = 99;
  EXPECT_NE(message(j).find("version"), std::string::npos);
  EXPECT_THROW(report_from_json_text("{\"format\": \"hbmalloc-report\"", "cut.json"), Error);
  EXPECT_THROW(report_from_json_text(std::string(100000, '['), "deep.json"), Error);
  EXPECT_THROW(report_from_json_text(std::string(100000, '[') + std::string(100000, ']'), "deep.json"), Error);
}

TEST(Report, TextHasTheSectionsAndFigures) {
  Sample s = replay_sample(std::nullopt);
  FragReport r = build_report(s.trace, s.result, s.options);
  std::string text = render_text(r);
  for (const char* section : {"Run\n---", "Memory summary", "Fragmentation\n---", "Versus the recording allocator",
                              "Worst holes", "Least utilized segments", "Request sizes", "What to do\n---"})
    EXPECT_NE(text.find(section), std::string::npos) << section;
  EXPECT_NE(text.find("GPU reserved memory"), std::string::npos);
  EXPECT_NE(text.find(format_bytes(s.result.peak_reserved)), std::string::npos);
  EXPECT_NE(text.find(format_bytes(s.result.peak_requested)), std::string::npos);
  EXPECT_TRUE(std::regex_search(text, std::regex("\n  capacity +unlimited\n")));
  // The report ends with what to do.
  EXPECT_GT(text.rfind("What to do"), text.rfind("Request sizes"));
  EXPECT_EQ(text.find("Out of memory"), std::string::npos);  // none here
}

TEST(Report, HtmlIsSelfContainedAndEscapesTraceText) {
  Sample s = replay_sample(std::nullopt);
  s.trace.source = "<script>alert(1)</script>.pickle";
  s.trace.settings.push_back({"key\"><img src=x onerror=alert(2)>", "<b>v</b>"});
  FragReport r = build_report(s.trace, s.result, s.options);
  std::string html = render_html(r);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  // Nothing loaded from elsewhere, no scripts.
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(<[^>]*\s(src|href)\s*=)", std::regex::icase)));
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;.pickle"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;v&lt;/b&gt;"), std::string::npos);
  // Timeline, the map at the peak, two histograms.
  EXPECT_EQ(count(html, "<svg"), 4u);
  EXPECT_EQ(count(html, "</svg>"), 4u);
  EXPECT_NE(html.find("aria-label=\"memory over time\""), std::string::npos);
  EXPECT_NE(html.find("aria-label=\"segment map peak reserved\""), std::string::npos);
  EXPECT_NE(html.find("peak reserved " + format_bytes(s.result.peak_reserved)), std::string::npos);
  EXPECT_NE(html.find("<title>"), std::string::npos);  // tooltips on blocks
}

TEST(Report, OomReportExplainsAndAdvises) {
  Sample unlimited = replay_sample(std::nullopt);
  // Three quarters of what the run needs: it must fail somewhere.
  uint64_t capacity = unlimited.result.peak_reserved / 4 * 3 / (2 * kMiB) * (2 * kMiB);
  Sample s = replay_sample(capacity);
  ASSERT_FALSE(s.result.ooms.empty());
  s.options.min_capacity = unlimited.result.peak_reserved;
  FragReport r = build_report(s.trace, s.result, s.options);
  ASSERT_EQ(r.ooms.size(), s.result.ooms.size());
  for (const OomReport& o : r.ooms) {
    EXPECT_TRUE(o.cause == "capacity" || o.cause == "fragmentation" || o.cause == "stream") << o.cause;
    ASSERT_GE(o.advice.size(), 2u);
    EXPECT_NE(o.advice.back().find("min capacity " + format_bytes(unlimited.result.peak_reserved)), std::string::npos);
  }
  EXPECT_EQ(r.maps.size(), 1 + r.ooms.size());
  EXPECT_EQ(r.maps[1].title, "OOM 1");
  EXPECT_NE(r.advice.front().find("request(s) failed"), std::string::npos);
  std::string text = render_text(r);
  EXPECT_NE(text.find("Out of memory (" + std::to_string(r.ooms.size()) + ")"), std::string::npos);
  EXPECT_NE(text.find("cause: " + r.ooms[0].cause), std::string::npos);
  std::string html = render_html(r);
  EXPECT_NE(html.find("OOM 1"), std::string::npos);
  EXPECT_NE(html.find(">capacity " + format_bytes(capacity) + "<"), std::string::npos);  // the capacity line
  write_sample("oom", r);
}

// A device far too small fails thousands of requests: the first kOomsListed
// get their picture and are written out in full, the rest in one line; the
// JSON keeps every OOM.
TEST(Report, ManyOomsPastTheFirstAreSummed) {
  synth::GptOptions so;
  so.steps = 2;
  so.layers = 4;
  const trace::Trace t = synth::gpt_training(so);
  replay::ReplayOptions o;
  o.capacity = 64 * kMiB;
  FragReport r = replay_and_report(t, o, ReportOptions{});
  ASSERT_GT(r.ooms.size(), kOomsListed + 10);
  // (An OOM with nothing reserved yet has no map.)
  size_t pictured = 0;
  for (const SegmentMap& m : r.maps) pictured += m.title.rfind("OOM ", 0) == 0;
  EXPECT_LE(pictured, kOomsListed);
  EXPECT_GT(pictured, kOomsListed / 2);
  EXPECT_EQ(r.maps.back().title, "OOM " + std::to_string(kOomsListed));

  const std::string text = render_text(r);
  EXPECT_EQ(count(text, ", cause: "), kOomsListed);
  EXPECT_NE(text.find("#" + std::to_string(kOomsListed) + " event"), std::string::npos);
  EXPECT_EQ(text.find("#" + std::to_string(kOomsListed + 1) + " event"), std::string::npos);
  const std::string more = "... and " + std::to_string(r.ooms.size() - kOomsListed) + " more, events " +
                           std::to_string(r.ooms[kOomsListed].event) + " to " + std::to_string(r.ooms.back().event) +
                           ": ";
  EXPECT_NE(text.find(more), std::string::npos) << text.substr(text.find("Out of memory"), 3000);
  EXPECT_NE(text.find("(--json lists every one)"), std::string::npos);

  const std::string html = render_html(r);
  EXPECT_EQ(count(html, "<div class=\"oom\">"), kOomsListed);
  EXPECT_NE(html.find("And " + std::to_string(r.ooms.size() - kOomsListed) + " more"), std::string::npos);

  const nlohmann::json j = nlohmann::json(r);
  EXPECT_EQ(j["ooms"].size(), r.ooms.size());
  EXPECT_EQ(nlohmann::json(report_from_json(j, "x")), j);
}

TEST(Report, UnlistedFailuresAreSummedUp) {
  std::vector<Unlisted> rest;
  const char* kinds[] = {"capacity", "fragmentation", "capacity"};
  for (size_t i = 0; i < 3; ++i) rest.push_back({50 - 10 * i, (i + 3) * kMiB, kinds[i]});
  EXPECT_EQ(sum_up({}), "");
  EXPECT_EQ(sum_up(rest), "3 more, events 30 to 50: capacity 2, fragmentation 1; requests of 3.00 MiB to 5.00 MiB");
  EXPECT_EQ(sum_up({rest[0]}), "1 more, events 50 to 50: capacity 1; requests of 3.00 MiB");
  std::vector<int> all(kOomsListed + 2, 7);
  const std::vector<Unlisted> past = unlisted(all, [](int v) { return Unlisted{uint64_t(v), 1, "x"}; });
  EXPECT_EQ(past.size(), 2u);
  EXPECT_TRUE(unlisted(std::vector<int>(kOomsListed, 1), [](int) { return Unlisted{}; }).empty());
}

TEST(Report, OomCausesAndTheirAdvice) {
  replay::OomRecord o;
  o.event = 10;
  o.size = 2 * kGiB;
  o.capacity = 8 * kGiB;
  o.usage = {5 * kGiB, 5 * kGiB, 8 * kGiB};  // 3 GiB cached, but in pieces
  o.cached_free = 3 * kGiB;
  o.largest_free_block = 1 * kGiB + 200 * kMiB;
  OomReport r = explain_oom(o, std::nullopt);
  EXPECT_EQ(r.cause, "fragmentation");
  EXPECT_NE(r.advice[0].find("cached free 3.00 GiB + unreserved 0 B >= request 2.00 GiB but the largest free block "
                             "is 1.20 GiB: fragmentation"),
            std::string::npos)
      << r.advice[0];

  o.usage = {7 * kGiB, 7 * kGiB, 8 * kGiB};
  o.cached_free = 1 * kGiB;
  o.largest_free_block = 1 * kGiB;
  r = explain_oom(o, 10 * kGiB);
  EXPECT_EQ(r.cause, "capacity");
  EXPECT_NE(r.advice[0].find("needs " + std::to_string(kGiB) + " more bytes than the capacity 8.00 GiB"),
            std::string::npos)
      << r.advice[0];
  EXPECT_NE(r.advice[1].find("min capacity 10.00 GiB"), std::string::npos);

  o.largest_free_block = 3 * kGiB;  // big enough, but not usable for this request
  EXPECT_EQ(explain_oom(o, std::nullopt).cause, "stream");
}

TEST(Report, StaticSnapshotReport) {
  FragReport r = build_static_report(snapshot_trace(), 0);
  EXPECT_TRUE(r.run.static_snapshot);
  EXPECT_FALSE(r.summary.has_history);
  EXPECT_FALSE(r.native);
  ASSERT_EQ(r.frag.moments.size(), 1u);
  const MomentFigures& m = r.frag.moments[0];
  EXPECT_EQ(m.reserved, 86 * kMiB);
  EXPECT_EQ(m.allocated, 16 * kMiB + 512);  // pending blocks still occupy memory
  EXPECT_EQ(m.requested, 16 * kMiB - 100 + 500);
  EXPECT_EQ(m.largest_free_block, 32 * kMiB);
  EXPECT_EQ(m.inactive_split_bytes, 48 * kMiB + 2 * kMiB - 512);
  EXPECT_DOUBLE_EQ(m.external_fragmentation, 1.0 - double(32 * kMiB) / double(m.cached_free));
  // Holes: the wholly free 20 MiB segment is not one.
  ASSERT_EQ(r.frag.worst_holes.size(), 3u);
  EXPECT_EQ(r.frag.worst_holes[0].size, 32 * kMiB);
  EXPECT_EQ(r.frag.worst_holes[1].size, 16 * kMiB);
  EXPECT_EQ(r.frag.worst_holes[2].size, 2 * kMiB - 512);
  // The summary: pending blocks are active, not allocated.
  EXPECT_EQ(r.summary.rows[0].name, "allocated_bytes");
  EXPECT_EQ(r.summary.rows[0].stat.all.current, int64_t(8 * kMiB + 512));
  EXPECT_EQ(r.summary.rows[1].stat.all.current, int64_t(16 * kMiB + 512));
  EXPECT_EQ(r.summary.rows[5].stat.all.current, 2);  // allocations
  EXPECT_EQ(r.summary.rows[7].stat.small_pool.current, 1);  // segments
  ASSERT_EQ(r.maps.size(), 1u);
  EXPECT_EQ(r.maps[0].layout[2].blocks.size(), 2u);  // the gap became a free block
  std::string text = render_text(r);
  EXPECT_NE(text.find("static snapshot"), std::string::npos);
  EXPECT_EQ(text.find("Peak Usage"), std::string::npos);  // no history, no peaks
  EXPECT_NE(text.find("expandable_segments = False"), std::string::npos);
  std::string html = render_html(r);
  EXPECT_EQ(count(html, "<svg"), 3u);  // the map and two histograms; no timeline
  EXPECT_EQ(nlohmann::json(report_from_json(nlohmann::json(r), "x")), nlohmann::json(r));
  write_sample("static", r);
}

// A snapshot recorded with expandable segments: empty_cache would unmap the
// whole pages of free blocks (2 MiB in the small pool, 20 MiB in the large,
// as PyTorch maps them), so those are not inactive split, in the moment or
// in the memory summary.
TEST(Report, StaticSnapshotOfExpandableSegments) {
  trace::Trace t;
  t.source = "es.pickle";
  t.settings = {{"expandable_segments", "True"}};
  trace::DeviceTrace& d = t.devices.emplace_back();
  d.has_segment_picture = true;
  using S = trace::BlockState;
  const uint64_t a = 0x7f0000000000, b = a + 60 * kMiB;
  // Three 20 MiB pages: 4 MiB live, then free; the last two pages are whole.
  d.segments_at_end.push_back({a, 60 * kMiB, 0, false, true,
                               {{0, a, 4 * kMiB, 4 * kMiB, 0, S::kActiveAllocated},
                                {0, a + 4 * kMiB, 56 * kMiB, 0, 0, S::kInactive}}});
  // Two 2 MiB pages: 512 B live, then free; the second page is whole.
  d.segments_at_end.push_back({b, 4 * kMiB, 0, true, true, {{0, b, 512, 512, 0, S::kActiveAllocated}}});
  FragReport r = build_static_report(t, 0);
  const uint64_t kept = 16 * kMiB + 2 * kMiB - 512;
  EXPECT_EQ(r.frag.moments.at(0).inactive_split_bytes, kept);
  EXPECT_EQ(r.summary.rows.at(4).name, "inactive_split_bytes");
  EXPECT_EQ(r.summary.rows[4].stat.all.current, int64_t(kept));
  EXPECT_EQ(r.summary.rows[4].stat.small_pool.current, int64_t(2 * kMiB - 512));
  EXPECT_EQ(r.summary.rows.at(8).name, "inactive_split");
  EXPECT_EQ(r.summary.rows[8].stat.all.current, 2);
  // The same picture with plain segments keeps every free byte.
  for (trace::SegmentInfo& seg : d.segments_at_end) seg.expandable = false;
  EXPECT_EQ(build_static_report(t, 0).summary.rows[4].stat.all.current, int64_t(56 * kMiB + 4 * kMiB - 512));
}

TEST(Report, BadSnapshotsAreErrorsNamingTheSource) {
  auto message = [](const trace::Trace& t, int device) {
    try {
      build_static_report(t, device);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  trace::Trace t = snapshot_trace();
  EXPECT_NE(message(t, 3).find("snap.pickle: the trace has no device 3"), std::string::npos);
  t.devices[0].segments_at_end[0].blocks[1].addr -= 1;  // overlaps the first block
  EXPECT_NE(message(t, 0).find("snap.pickle: device 0: segment at 0x7f0000000000: block at 0x7f00007fffff overlaps"),
            std::string::npos)
      << message(t, 0);
  t = snapshot_trace();
  t.devices[0].segments_at_end[0].blocks[3].size = 33 * kMiB;
  EXPECT_NE(message(t, 0).find("runs past the end of its segment"), std::string::npos);
  t = snapshot_trace();
  t.devices[0].segments_at_end[1].addr -= kMiB;
  EXPECT_NE(message(t, 0).find("overlaps the previous segment"), std::string::npos);
  t = snapshot_trace();
  t.devices[0].segments_at_end[0].size = UINT64_MAX;
  EXPECT_NE(message(t, 0).find("runs past the end of the address space"), std::string::npos);
  t = snapshot_trace();
  t.devices[0].has_segment_picture = false;
  EXPECT_NE(message(t, 0).find("no segment picture"), std::string::npos);
}

TEST(Report, HostileNumbersInASavedReportStillRender) {
  nlohmann::json j = nlohmann::json(build_static_report(snapshot_trace(), 0));
  j["run"]["static_snapshot"] = false;
  j["run"]["first_time_us"] = INT64_MIN;
  j["run"]["last_time_us"] = INT64_MAX;
  j["run"]["replay_seconds"] = 1e300;
  // Events so large that adding a tick step does not change a double.
  const uint64_t e = uint64_t(1) << 62;
  j["timeline"] = {{e, INT64_MIN, 1, 2, UINT64_MAX}, {e + 100, INT64_MAX, 1, 2, 3}};
  j["ooms"] = {{{"event", e}, {"time_us", INT64_MAX}, {"size", UINT64_MAX}, {"stream", 0}, {"requested", UINT64_MAX},
                {"allocated", UINT64_MAX}, {"reserved", UINT64_MAX}, {"cached_free", 0}, {"largest_free_block", 0},
                {"capacity", 0}, {"cause", "capacity"}, {"advice", {"x"}}}};
  FragReport r = report_from_json(j, "hostile.json");
  EXPECT_NE(render_text(r).find("What to do"), std::string::npos);
  std::string html = render_html(r);
  EXPECT_NE(html.find("memory over time"), std::string::npos);
  EXPECT_EQ(html.find("nan"), std::string::npos);
  EXPECT_EQ(html.find("inf\""), std::string::npos);
}

TEST(Report, HugeLayoutsAreDrawnWithBoundedShapes) {
  SegmentMap map{"peak reserved", 0, {}};
  // 300 segments of 4096 blocks each, alternating used and free.
  for (uint64_t s = 0; s < 300; ++s) {
    SegmentLayout seg{(s + 1) << 32, 4096 * 512, s % 2 ? Pool::kSmall : Pool::kLarge, 0, {}};
    for (uint64_t b = 0; b < 4096; ++b)
      seg.blocks.push_back({seg.addr + b * 512, 512, b % 2 ? 0u : 500u, b % 2 == 0});
    map.layout.push_back(std::move(seg));
  }
  std::string svg = segment_map_svg(map);
  EXPECT_LT(count(svg, "<rect"), 12000u);
  EXPECT_NE(svg.find("showing 40 of 300 segments, those with holes first; not drawn: 260 with holes (520.00 MiB)"), std::string::npos) << svg.substr(svg.size() - 400);
}

TEST(Report, LayoutFiguresOfAnEmptyPicture) {
  MomentFigures m = moment_of({}, "end");
  EXPECT_EQ(m.reserved, 0u);
  EXPECT_EQ(m.external_fragmentation, 0.0);
  EXPECT_TRUE(worst_holes({}, 5).empty());
  // An empty snapshot renders.
  trace::Trace t;
  t.source = "empty.pickle";
  t.devices.emplace_back().has_segment_picture = true;
  FragReport r = build_static_report(t, 0);
  EXPECT_NE(render_text(r).find("What to do"), std::string::npos);
  EXPECT_NE(render_html(r).find("no segments held"), std::string::npos);
}

const std::filesystem::path kShared = std::filesystem::path(HBMALLOC_SOURCE_DIR) / ".." / "shared" / "traces";

TEST(ReportOnSharedTraces, StaticSnapshotAddsUp) {
  const auto path = kShared / "static" / "verl_mem.pickle";
  ASSERT_TRUE(std::filesystem::exists(path)) << "../shared/traces must be beside the repository: no " << path;
  trace::Trace t = trace::read_trace_file(path.string());
  FragReport r = build_static_report(t, t.devices.at(0).device);
  uint64_t reserved = 0;
  for (const trace::SegmentInfo& s : t.devices[0].segments_at_end) reserved += s.size;
  ASSERT_EQ(r.frag.moments.size(), 1u);
  EXPECT_EQ(r.frag.moments[0].reserved, reserved);
  EXPECT_EQ(r.summary.rows[3].stat.all.current, int64_t(reserved));
  EXPECT_LE(r.frag.moments[0].allocated, reserved);
  EXPECT_GT(r.frag.moments[0].allocated, 0u);
  EXPECT_EQ(r.maps.at(0).layout.size(), t.devices[0].segments_at_end.size());
  EXPECT_EQ(count(render_html(r), "<svg"), 3u);
  EXPECT_EQ(nlohmann::json(report_from_json(nlohmann::json(r), "x")), nlohmann::json(r));
  write_sample("shared_static", r);
}

// Who held memory is worked out for the first OOMs only: at a device far too
// small, each of thousands of OOMs walked the trace (and 389 MB of JSON).
TEST(ReportOnSharedTraces, SitesAndPinsOfTheFirstOomsOnly) {
  const auto path = kShared / "snapshots" / "wedsonlin_medium_512_training.pickle";
  ASSERT_TRUE(std::filesystem::exists(path)) << "../shared/traces must be beside the repository: no " << path;
  trace::Trace t = trace::read_trace_file(path.string());
  ASSERT_FALSE(t.stacks.empty());
  replay::ReplayOptions o;
  o.capacity = 64 * kMiB;
  FragReport r = replay_and_report(t, o, ReportOptions{});
  ASSERT_GT(r.ooms.size(), 1000u);
  EXPECT_EQ(r.sites.size(), 1 + kOomsListed);  // the peak's and the first OOMs'
  EXPECT_EQ(r.sites.back().moment, "OOM " + std::to_string(kOomsListed));
  EXPECT_LE(r.pins.size(), 1 + kOomsListed);
  EXPECT_LT(nlohmann::json(r).dump().size(), size_t(20) << 20);
}

TEST(ReportOnSharedTraces, ReplayCarriesTheNativeBaseline) {
  // traces/README.md: peak requested 762608640, native peak reserved 937426944.
  const auto path = kShared / "snapshots" / "charan6924_memory_snapshot.pickle";
  ASSERT_TRUE(std::filesystem::exists(path)) << "../shared/traces must be beside the repository: no " << path;
  trace::Trace t = trace::read_trace_file(path.string());
  replay::ReplayOptions o;
  o.timeline_points = 1000;
  o.capture_layouts = true;
  replay::ReplayResult result = replay::replay(t, o);
  ReportOptions ro;
  ro.config = o.config;
  FragReport r = build_report(t, result, ro);
  EXPECT_EQ(r.frag.peak_requested, 762608640u);
  ASSERT_TRUE(r.native && r.native->peak_reserved);
  EXPECT_EQ(*r.native->peak_reserved, 937426944u);
  EXPECT_EQ(r.native->peak_requested, 762608640u);
  EXPECT_NE(render_text(r).find("894.00 MiB"), std::string::npos);
  EXPECT_NE(render_html(r).find("recording allocator&#39;s peak reserved 894.00 MiB"), std::string::npos);
  write_sample("shared_replay", r);
}

}  // namespace
}  // namespace hbmalloc::report

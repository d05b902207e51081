// Who holds the memory (report/alloc_sites.h): stacks read from real
// snapshots, each block's site, and the sites at the peak adding up to the
// live bytes there, in the text, JSON and HTML reports.
#include "report/alloc_sites.h"

#include "hbmalloc/error.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <numeric>
#include <string>

#include "report/frag_report.h"
#include "report/html_report.h"
#include "report/json_report.h"
#include "report/text_report.h"
#include "record/hbt_writer.h"
#include "record/snapshot_writer.h"
#include "support/cli_run.h"
#include "trace/jsonl_format.h"
#include "trace/read_trace.h"
#include "synth/gpt_training.h"

namespace hbmalloc::report {
namespace {

trace::Trace shared_snapshot(const std::string& name) {
  return trace::read_trace_file((hbmalloc::testing::shared_traces() / "snapshots" / name).string());
}

FragReport report_of(const trace::Trace& t) {
  replay::ReplayOptions o;
  o.config.backend = "sim";
  return replay_and_report(t, o, ReportOptions{});
}

uint64_t sum_of(const SitesAt& at) {
  return std::accumulate(at.sites.begin(), at.sites.end(), uint64_t(0),
                         [](uint64_t n, const Site& s) { return n + s.bytes; });
}

TEST(AllocSites, SnapshotStacksAreKeptOnceAndEachBlockHasItsAllocationsStack) {
  const trace::Trace t = shared_snapshot("kkaitlyn_memory_files_memory_ctx128_forward.pickle");
  ASSERT_FALSE(t.stacks.empty());
  EXPECT_LT(t.stacks.size(), 200u) << "thousands of blocks share a few stacks";
  const trace::DeviceTrace& d = t.devices.front();
  ASSERT_EQ(d.block_stacks.size(), d.block_count);
  size_t allocs = 0, with_stack = 0;
  for (const trace::Event& e : d.events)
    if (e.action == trace::Action::kAlloc) {
      ++allocs;
      with_stack += d.block_stacks[e.id] != trace::kNoStack;
    }
  EXPECT_EQ(with_stack, allocs) << "every alloc of this snapshot recorded its frames";
  for (const std::vector<uint32_t>& stack : t.stacks)
    for (uint32_t f : stack) ASSERT_LT(f, t.frames.size());
}

// Each alloc's stack as text, in event order (ids and numbering may differ
// between two readings; the frames may not).
std::vector<std::vector<std::string>> alloc_stacks(const trace::Trace& t) {
  std::vector<std::vector<std::string>> out;
  for (const trace::DeviceTrace& d : t.devices)
    for (const trace::Event& e : d.events) {
      if (e.action != trace::Action::kAlloc) continue;
      std::vector<std::string>& frames = out.emplace_back();
      const uint32_t s = e.id < d.block_stacks.size() ? d.block_stacks[e.id] : trace::kNoStack;
      if (s == trace::kNoStack) continue;
      for (uint32_t f : t.stacks[s])
        frames.push_back(t.frames[f].filename + ":" + std::to_string(t.frames[f].line) + " " + t.frames[f].name);
    }
  return out;
}

TEST(AllocSites, EveryStackSurvivesHbtPickleAndJsonLines) {
  const trace::Trace original = shared_snapshot("kkaitlyn_memory_files_memory_ctx128_forward.pickle");
  const trace::Trace hbt = trace::read_trace_bytes(trace::write_hbt(original), "roundtrip.hbt");
  EXPECT_EQ(hbt.frames.size(), original.frames.size());
  EXPECT_EQ(hbt.stacks, original.stacks);
  EXPECT_EQ(hbt.devices.front().block_stacks, original.devices.front().block_stacks);
  const trace::Trace pickle = trace::read_trace_bytes(trace::write_pytorch_snapshot(hbt), "roundtrip.pickle");
  const trace::Trace jsonl = trace::read_trace_bytes(trace::write_jsonl(original), "roundtrip.jsonl");
  const auto want = alloc_stacks(original);
  EXPECT_EQ(alloc_stacks(hbt), want);
  EXPECT_EQ(alloc_stacks(pickle), want);
  EXPECT_EQ(alloc_stacks(jsonl), want);
  EXPECT_EQ(jsonl.devices.front().block_stacks, original.devices.front().block_stacks);
  EXPECT_THROW(trace::read_trace_bytes("{\"hbmalloc_trace\": 1}\n{\"action\": \"stack\", \"frames\": [0]}\n", "bad.jsonl"),
               Error) << "a stack naming a frame no line gave";
  // Blocks live since before the trace keep the final picture's stacks too.
  const FragReport a = report_of(original), b = report_of(pickle);
  ASSERT_FALSE(a.sites.empty());
  ASSERT_EQ(b.sites.size(), a.sites.size());
  for (size_t i = 0; i < a.sites.front().sites.size(); ++i)
    EXPECT_EQ(b.sites.front().sites[i].where, a.sites.front().sites[i].where);
}

TEST(AllocSites, TheSiteIsTheInnermostFrameOutsidePyTorchAndPython) {
  trace::Trace t;
  t.frames = {{"??", "torch::unwind::unwind()", 0},
              {"/usr/lib/python3/dist-packages/torch/nn/modules/linear.py", "forward", 125},
              {"/usr/lib/python3.11/contextlib.py", "__exit__", 144},
              {"/home/me/model/attention.py", "forward", 88},
              {"/home/me/train.py", "main", 12}};
  t.frames.push_back({"RegisterCUDA_0.cpp", "at::(anonymous namespace)::wrapper_CUDA_nll_loss_backward(at::Tensor const&)", 0});
  t.frames.push_back({"??", "at::_ops::nll_loss_backward::call(at::Tensor const&)", 0});
  t.frames.push_back({"Functions.cpp", "torch::autograd::generated::NllLossBackward0::apply(std::vector<at::Tensor>&&)", 0});
  t.frames.push_back({"/tmp/torchinductor_me/cf/cfyn.py", "call", 7});
  t.stacks = {{0, 1, 2, 3, 4}, {0, 1, 2}, {0}, {0, 5, 6, 7}, {0, 5, 6}, {8, 3}};
  EXPECT_EQ(site_of(t, 0), "attention.py:88 forward");
  EXPECT_EQ(site_of(t, 1), "linear.py:125 forward") << "all internal: the innermost Python frame";
  EXPECT_EQ(site_of(t, 2), "?? torch::unwind::unwind()");
  EXPECT_EQ(site_of(t, 3), "autograd NllLossBackward0") << "the backward pass: no Python on the engine's thread";
  EXPECT_EQ(site_of(t, 4), "aten nll_loss_backward");
  EXPECT_EQ(site_of(t, 5), "attention.py:88 forward") << "code torch.compile generated is PyTorch's";
  EXPECT_EQ(site_of(t, trace::kNoStack), "(no stack recorded)");
}

TEST(AllocSites, AtThePeakTheSitesAddUpToTheLiveBytes) {
  const trace::Trace t = shared_snapshot("kkaitlyn_memory_files_memory_ctx128_forward.pickle");
  const FragReport r = report_of(t);
  ASSERT_TRUE(r.has_stacks);
  ASSERT_FALSE(r.sites.empty());
  const SitesAt& peak = r.sites.front();
  EXPECT_EQ(peak.moment, "peak reserved");
  EXPECT_EQ(sum_of(peak), peak.live_bytes);
  ASSERT_FALSE(r.frag.moments.empty());
  EXPECT_EQ(peak.live_bytes, r.frag.moments.front().requested) << "the live requested bytes of the peak's picture";
  EXPECT_LE(peak.sites.size(), 11u);
  const std::string text = render_text(r);
  EXPECT_NE(text.find("Who holds the memory"), std::string::npos);
  EXPECT_NE(text.find("transformer.py:22 forward"), std::string::npos) << text.substr(text.find("Who holds"), 1500);
  const std::string html = render_html(r);
  EXPECT_NE(html.find("transformer.py:22 forward: the whole stack"), std::string::npos);
  const FragReport back = report_from_json(nlohmann::json(r), "x");
  ASSERT_EQ(back.sites.size(), r.sites.size());
  EXPECT_EQ(back.sites.front().sites.front().where, peak.sites.front().where);
  EXPECT_EQ(back.sites.front().sites.front().stack, peak.sites.front().stack);
}

// What pins the fragmentation: every free byte of the peak's segments that
// hold live blocks is charged to one site, and those are the inactive split
// bytes the peak's figures count.
TEST(AllocSites, ThePinsAddUpToTheFreeBytesOfSegmentsHoldingLiveBlocks) {
  for (const char* name : {"kkaitlyn_memory_files_memory_ctx128_forward.pickle", "bcrafton_memory_snapshot.pickle"}) {
    SCOPED_TRACE(name);
    const FragReport r = report_of(shared_snapshot(name));
    ASSERT_EQ(r.pins.size(), 1u);
    const PinsAt& at = r.pins.front();
    uint64_t pinned = 0, blocks = 0;
    for (const Pin& p : at.sites) {
      pinned += p.pinned;
      blocks += p.blocks;
    }
    EXPECT_EQ(pinned, at.pinned);
    EXPECT_EQ(at.pinned, r.frag.moments.front().inactive_split_bytes);
    EXPECT_GT(blocks, 0u);
    EXPECT_NE(render_text(r).find("what pins the fragmentation at peak reserved"), std::string::npos);
    const FragReport back = report_from_json(nlohmann::json(r), "x");
    ASSERT_EQ(back.pins.size(), 1u);
    EXPECT_EQ(back.pins.front().pinned, at.pinned);
  }
  // A hand-made picture: one segment, 6 MiB free beside two sites' blocks of 1 and 2 MiB.
  trace::Trace t;
  t.frames = {{"/a/x.py", "f", 1}, {"/a/y.py", "g", 2}};
  t.stacks = {{0}, {1}};
  trace::DeviceTrace d;
  d.block_count = 2;
  d.block_stacks = {0, 1};
  Layout layout{{0x1000000, 9u << 20, Pool::kLarge, 0,
                 {{0x1000000, 1u << 20, 1u << 20, true}, {0x1100000, 2u << 20, 2u << 20, true},
                  {0x1300000, 6u << 20, 0, false}}}};
  const PinsAt at = pins_at(t, d, layout, {{0x1000000, 0}, {0x1100000, 1}}, "here");
  ASSERT_EQ(at.sites.size(), 2u);
  EXPECT_EQ(at.sites[0].where, "y.py:2 g");
  EXPECT_EQ(at.sites[0].pinned, 4u << 20);
  EXPECT_EQ(at.sites[1].pinned, 2u << 20);
}

TEST(AllocSites, EachOomAndAStaticSnapshotHaveTheirSites) {
  const trace::Trace t = shared_snapshot("kkaitlyn_memory_files_memory_ctx128_forward.pickle");
  replay::ReplayOptions o;
  o.config.backend = "sim";
  o.capacity = 8ull << 30;  // well under the run's peak
  const FragReport r = replay_and_report(t, o, ReportOptions{});
  // The first kOomsListed OOMs (this run has many more) get their sites.
  ASSERT_GT(r.ooms.size(), kOomsListed);
  const size_t pictured = kOomsListed;
  ASSERT_EQ(r.sites.size(), 1 + pictured);
  EXPECT_EQ(r.sites[1].moment, "OOM 1");
  for (size_t i = 0; i < pictured; ++i) {
    EXPECT_EQ(sum_of(r.sites[i + 1]), r.sites[i + 1].live_bytes);
    EXPECT_EQ(r.sites[i + 1].live_bytes, r.ooms[i].usage.requested) << "what the replay held when OOM " << i + 1 << " failed";
  }

  // What pins the fragmentation at each OOM: its picture's free bytes beside live blocks.
  ASSERT_EQ(r.pins.size(), 1 + pictured);
  for (size_t i = 0; i < pictured; ++i) {
    const PinsAt& at = r.pins[i + 1];
    EXPECT_EQ(at.moment, "OOM " + std::to_string(i + 1));
    uint64_t want = 0;
    for (const SegmentMap& m : r.maps)
      if (m.title == at.moment)
        for (const SegmentLayout& seg : m.layout) {
          uint64_t free = 0, live = 0;
          for (const BlockLayout& blk : seg.blocks) (blk.allocated ? live : free) += blk.size;
          if (live > 0) want += free;
        }
    uint64_t pinned = 0;
    for (const Pin& p : at.sites) pinned += p.pinned;
    EXPECT_EQ(pinned, at.pinned);
    EXPECT_EQ(at.pinned, want) << at.moment;
  }

  const trace::Trace still = trace::read_trace_file((hbmalloc::testing::shared_traces() / "static" / "verl_mem.pickle").string());
  const FragReport s = build_static_report(still, still.devices.front().device);
  ASSERT_TRUE(s.has_stacks) << "verl_mem's live blocks carry their frames";
  ASSERT_EQ(s.sites.size(), 1u);
  EXPECT_EQ(sum_of(s.sites.front()), s.sites.front().live_bytes);
  EXPECT_EQ(s.sites.front().live_bytes, s.frag.moments.front().requested);
}

TEST(AllocSites, ATraceWithoutStacksSaysSo) {
  synth::GptOptions so;
  so.steps = 2;
  so.layers = 2;
  const FragReport r = report_of(synth::gpt_training(so));
  EXPECT_FALSE(r.has_stacks);
  EXPECT_TRUE(r.sites.empty());
  EXPECT_NE(render_text(r).find("no stacks recorded"), std::string::npos);
  EXPECT_NE(render_html(r).find("No stacks recorded"), std::string::npos);
}

}  // namespace
}  // namespace hbmalloc::report

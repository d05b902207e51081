// Annotations (PyTorch's external_annotations) and user metadata
// (torch.cuda.memory._set_memory_metadata): read from snapshots, kept through
// .hbt, JSON lines and the pickle, moved with their events when a trace gets
// a replay's addresses, refused by name when malformed, and shown as marks
// on the report's timeline.
#include "report/timeline_marks.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "hbmalloc/error.hpp"
#include "record/hbt_writer.h"
#include "record/pickle_writer.h"
#include "record/snapshot_writer.h"
#include "replay/assign_addresses.h"
#include "report/frag_report.h"
#include "report/html_report.h"
#include "report/json_report.h"
#include "report/text_report.h"
#include "support/cli_run.h"
#include "trace/jsonl_format.h"
#include "trace/read_trace.h"
#include "synth/gpt_training.h"

namespace hbmalloc::report {
namespace {

using trace::Annotation;
using trace::MetadataChange;
using trace::PickleWriter;

trace::Trace niuhuang() {
  return trace::read_trace_file((hbmalloc::testing::shared_traces() / "incoming" /
                                 "NiuHuangxiaozi_forward_and_backward_memory_snapshot_100.pickle")
                                    .string());
}

TEST(TimelineMarks, ASnapshotsAnnotationsAreReadAsRecorded) {
  const trace::Trace t = niuhuang();
  ASSERT_EQ(t.annotations.size(), 12u);  // as Python's pickle reads them
  const Annotation& first = t.annotations.front();
  EXPECT_EQ(first.device, 0);
  EXPECT_EQ(first.time_us, 1762906655432898);
  EXPECT_EQ(first.field("stage"), "START");
  EXPECT_EQ(first.field("name"), "Optimizer.zero_grad#NIUAdam.zero_grad");
  EXPECT_EQ(t.annotations.back().field("stage"), "END");
  EXPECT_EQ(t.annotations.back().field("name"), "Optimizer.step#NIUAdam.step");
  // Its entries carry no user metadata (PyTorch writes "" on each: none).
  EXPECT_TRUE(t.devices.front().user_metadata.empty());
}

TEST(TimelineMarks, AnnotationsAndUserMetadataSurviveEveryFormat) {
  trace::Trace t = niuhuang();
  t.annotations.push_back(Annotation{0, 1762906655500000, {{"kind", "custom"}, {"step", "7"}}});
  trace::DeviceTrace& d = t.devices.front();
  d.user_metadata = {{0, "warmup"}, {5000, "step 2"}, {9000, ""}, {11299, "last"}};
  const trace::Trace hbt = trace::read_trace_bytes(trace::write_hbt(t), "rt.hbt");
  const trace::Trace pickle = trace::read_trace_bytes(trace::write_pytorch_snapshot(t), "rt.pickle");
  const trace::Trace jsonl = trace::read_trace_bytes(trace::write_jsonl(t), "rt.jsonl");
  const trace::Trace chain = trace::read_trace_bytes(
      trace::write_pytorch_snapshot(trace::read_trace_bytes(trace::write_jsonl(hbt), "c.jsonl")), "c.pickle");
  for (const trace::Trace* r : {&hbt, &pickle, &jsonl, &chain}) {
    SCOPED_TRACE(r->source);
    EXPECT_EQ(r->annotations, t.annotations);
    ASSERT_EQ(r->devices.size(), 1u);
    // The pickle writes no key for "" (PyTorch's none), which reads back as the change that cleared it.
    EXPECT_EQ(r->devices[0].user_metadata, d.user_metadata);
  }
}

TEST(TimelineMarks, MalformedAnnotationsAreRefusedByName) {
  auto snapshot_with = [](auto&& annotations) {
    PickleWriter w;
    w.begin_dict();
    w.str("segments");
    w.begin_list();
    w.end();
    w.str("external_annotations");
    annotations(w);
    w.end();
    return w.finish();
  };
  auto error_of = [](const std::string& bytes) -> std::string {
    try {
      trace::read_trace_bytes(bytes, "bad.pickle");
    } catch (const Error& e) {
      return e.what();
    }
    return "(read)";
  };
  EXPECT_NE(error_of(snapshot_with([](PickleWriter& w) { w.str("START"); })).find("'external_annotations' is a str, not a list"),
            std::string::npos);
  EXPECT_NE(error_of(snapshot_with([](PickleWriter& w) {
              w.begin_list();
              w.begin_dict();
              w.str("name");
              w.begin_list();
              w.end();
              w.end();
              w.end();
            })).find("external_annotations[0]: 'name' is a list, not a str"),
            std::string::npos);
  EXPECT_NE(error_of(snapshot_with([](PickleWriter& w) {
              w.begin_list();
              w.begin_dict();
              w.str("device");
              w.integer(-3);
              w.end();
              w.end();
            })).find("external_annotations[0]: 'device' -3 is out of range"),
            std::string::npos);
  // None (a snapshot taken without annotations) is no annotation.
  PickleWriter none;
  none.begin_dict();
  none.str("segments");
  none.begin_list();
  none.end();
  none.str("external_annotations");
  none.none();
  none.end();
  EXPECT_TRUE(trace::read_trace_bytes(none.finish(), "none.pickle").annotations.empty());
  EXPECT_THROW(trace::read_trace_bytes("{\"hbmalloc_trace\": 1}\n{\"action\": \"annotation\", \"fields\": [[\"a\"]]}\n",
                                       "bad.jsonl"),
               Error);
  // An .hbt annotation record that claims more fields than its bytes hold.
  trace::Trace t;
  t.has_history = true;
  t.devices.emplace_back();
  t.annotations.push_back(Annotation{0, 5, {}});
  std::string hbt = trace::write_hbt(t);
  const std::string record("\x0a\x00\x00\x00\x10\x00\x00\x00", 8);  // type 10, no flags, 16 bytes
  const size_t at = hbt.find(record);
  ASSERT_NE(at, std::string::npos);
  hbt.replace(at + 8 + 12, 4, "\xff\xff\xff\xff");
  try {
    trace::read_trace_bytes(hbt, "bad.hbt");
    FAIL() << "read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4294967295 annotation fields cannot fit"), std::string::npos) << e.what();
  }
}

// A trace without addresses gets a replay's segment events before its own:
// a metadata change moves to the first event made for its event.
TEST(TimelineMarks, MetadataFollowsItsEventsWhenATraceGetsAReplaysAddresses) {
  synth::GptOptions o;
  trace::Trace t = synth::gpt_training(o);
  trace::DeviceTrace& d = t.devices.front();
  ASSERT_TRUE(replay::lacks_addresses(d));
  std::vector<uint64_t> allocs;
  for (uint64_t i = 0; i < d.events.size(); ++i)
    if (d.events[i].action == trace::Action::kAlloc) allocs.push_back(i);
  ASSERT_GT(allocs.size(), 100u);
  d.user_metadata = {{allocs[3], "a"}, {allocs[50], "b"}, {allocs[99], "c"}};
  const trace::Trace placed = replay::with_replayed_addresses(t);
  const trace::DeviceTrace& p = placed.devices.front();
  ASSERT_EQ(p.user_metadata.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    const trace::Event& was = d.events[d.user_metadata[k].event];
    uint64_t at = p.user_metadata[k].event;
    EXPECT_EQ(p.user_metadata[k].text, d.user_metadata[k].text);
    while (at < p.events.size() && p.events[at].action != trace::Action::kAlloc) ++at;  // past the replay's segment events
    ASSERT_LT(at, p.events.size());
    EXPECT_EQ(p.events[at].id, was.id) << k;
    if (at > p.user_metadata[k].event) {
      // Only segment events lie between: they were made for this alloc.
      for (uint64_t i = p.user_metadata[k].event; i < at; ++i)
        EXPECT_TRUE(p.events[i].action == trace::Action::kSegmentAlloc || p.events[i].action == trace::Action::kSegmentMap);
    }
  }
}

TEST(TimelineMarks, OpenAtFollowsRangesAndMetadata) {
  const std::vector<TimelineMark> marks = {
      {10, 0, "start", "step"},     {12, 0, "metadata", "epoch 1"}, {20, 0, "start", "forward"},
      {30, 0, "end", "forward"},    {30, 0, "start", "backward"},   {40, 0, "end", "step"},
      {45, 0, "end", "backward"},   {50, 0, "metadata", ""},
  };
  EXPECT_TRUE(open_at(marks, 5).ranges.empty());
  EXPECT_EQ(open_at(marks, 10).ranges, (std::vector<std::string>{"step"})) << "a range holds the event it starts at";
  EXPECT_EQ(open_at(marks, 25).ranges, (std::vector<std::string>{"step", "forward"}));
  EXPECT_EQ(open_at(marks, 25).metadata, "epoch 1");
  EXPECT_EQ(open_at(marks, 30).ranges, (std::vector<std::string>{"step", "backward"})) << "ended before its end event";
  EXPECT_EQ(open_at(marks, 42).ranges, (std::vector<std::string>{"backward"})) << "ranges need not nest";
  EXPECT_TRUE(open_at(marks, 60).ranges.empty());
  EXPECT_EQ(open_at(marks, 60).metadata, "");
  EXPECT_EQ(falls_within(marks, "peak reserved", 25),
            "peak reserved (event 25) falls within: step > forward; metadata \"epoch 1\"");
  const std::vector<MarkTally> tally = tally_marks(marks);
  ASSERT_EQ(tally.size(), 5u);
  EXPECT_EQ(tally[0].label, "range step");
  EXPECT_EQ(tally[0].times, 1u);
}

TEST(TimelineMarks, TheReportPlacesEachAnnotationAtItsEvent) {
  const trace::Trace t = niuhuang();
  replay::ReplayOptions o;
  o.config.backend = "sim";
  const FragReport r = replay_and_report(t, o, ReportOptions{});
  ASSERT_EQ(r.marks.size(), 12u);
  const trace::DeviceTrace& d = t.devices.front();
  for (const TimelineMark& m : r.marks) {
    ASSERT_LT(m.event, d.events.size() + 1);
    // The first event at or after the annotation (on the events' running maximum of time).
    int64_t before = INT64_MIN;
    for (uint64_t i = 0; i < m.event; ++i) before = std::max(before, d.events[i].time_us);
    EXPECT_LT(before, m.time_us) << m.text;
    if (m.event < d.events.size()) {
      EXPECT_GE(std::max(before, d.events[m.event].time_us), m.time_us) << m.text;
    }
  }
  EXPECT_EQ(r.marks.front().kind, "start");
  EXPECT_EQ(r.marks.front().text, "Optimizer.zero_grad#NIUAdam.zero_grad");

  const std::string text = render_text(r);
  EXPECT_NE(text.find("Timeline marks: annotations and user metadata (12)"), std::string::npos);
  EXPECT_NE(text.find("peak reserved (event " + std::to_string(r.frag.peak_reserved_event) + ") falls within:"),
            std::string::npos) << text;
  EXPECT_NE(text.find("START Optimizer.step#NIUAdam.step"), std::string::npos);
  const std::string html = render_html(r);
  EXPECT_NE(html.find("<title>start Optimizer.step#NIUAdam.step (event"), std::string::npos) << "a mark on the timeline";
  EXPECT_NE(html.find("range Optimizer.step#NIUAdam.step"), std::string::npos);
  const nlohmann::json j = r;
  ASSERT_EQ(j["marks"].size(), 12u);
  EXPECT_EQ(j["marks"][0]["kind"], "start");
  const FragReport back = report_from_json(j, "saved.json");
  ASSERT_EQ(back.marks.size(), r.marks.size());
  EXPECT_EQ(back.marks.back().text, r.marks.back().text);
  EXPECT_EQ(back.marks.back().event, r.marks.back().event);
}

TEST(TimelineMarks, ATraceWithoutAnnotationsHasNoMarksSection) {
  synth::GptOptions o;
  const trace::Trace t = synth::gpt_training(o);
  replay::ReplayOptions ro;
  ro.config.backend = "sim";
  const FragReport r = replay_and_report(t, ro, ReportOptions{});
  EXPECT_TRUE(r.marks.empty());
  EXPECT_EQ(render_text(r).find("Timeline marks"), std::string::npos);
}

}  // namespace
}  // namespace hbmalloc::report

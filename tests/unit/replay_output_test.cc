// report/replay_output.h: what `hbmalloc replay` says, as one model: its JSON
// reads back to the same model (and the same text), bad fields are named by
// their path, and the run's lines do not repeat what the report says.
#include "report/replay_output.h"

#include <gtest/gtest.h>

#include <string>

#include "report/frag_report.h"
#include "report/json_fields.h"
#include "report/text_report.h"
#include "synth/gpt_training.h"

namespace hbmalloc::report {
namespace {

using nlohmann::json;

ReplayOutput sample_output(const std::string& conf) {
  synth::GptOptions so;
  so.steps = 3;
  so.layers = 4;
  const trace::Trace t = synth::gpt_training(so);
  replay::ReplayOptions o;
  o.config = Config::parse(conf);
  o.config.backend = "sim";
  o.fidelity = true;
  const replay::ReplayResult r = replay::replay(t, o);
  const std::optional<uint64_t> least = replay::min_capacity(t, o);
  return replay_output(t, r, o.config, least, true, replay_and_report(t, o, ReportOptions{}));
}

ReplayOutput read_back(const json& j) {
  ReplayOutput back;
  from_json(j, back);
  return back;
}

TEST(ReplayOutput, JsonReadsBackToTheSameOutputAndText) {
  for (const char* conf : {"", "policy:cca", "policy:cca,expandable_segments:True", "sim_lag:1ms,remap:always"}) {
    const ReplayOutput out = sample_output(conf);
    const json j = out;
    if (std::string(conf).starts_with("sim_lag")) EXPECT_GT(j["vmm"]["device_syncs"].get<int64_t>(), 0);
    const ReplayOutput back = read_back(j);
    EXPECT_EQ(json(back), j) << conf;
    EXPECT_EQ(render_text(back), render_text(out)) << conf;
  }
}

TEST(ReplayOutput, EveryOptionalPartReadsBack) {
  ReplayOutput out = sample_output("policy:cca");
  ReplayRun& r = out.run;
  r.pytorch_alloc_conf = "expandable_segments:True";
  r.reproduces_recording = true;
  r.started_from_picture = true;
  r.fidelity = replay::Fidelity{840, 838, 836, 836.0 / 840, 12, false};
  r.failed_requests = {{17, 3u << 20, 7, 1234, true}, {40, 9u << 20, 0, 2345, false}};
  r.native.native_peak_reserved = 123u << 20;
  r.native.native_ooms = 2;
  r.native.first_time_us = 0;
  r.native.last_time_us = 5'000'000;
  r.min_capacity.reset();  // searched, none found: null
  const json j = out;
  EXPECT_TRUE(j["min_capacity"].is_null());
  EXPECT_EQ(j["pytorch_alloc_conf"], "expandable_segments:True");
  EXPECT_DOUBLE_EQ(j["vmm"]["trace_seconds"].get<double>(), 5.0);
  const ReplayOutput back = read_back(j);
  EXPECT_EQ(json(back), j);
  EXPECT_EQ(render_text(back), render_text(out));
  ASSERT_TRUE(back.run.fidelity.has_value());
  EXPECT_EQ(back.run.fidelity->matched, 836u);
  EXPECT_FALSE(back.run.fidelity->exact);
}

TEST(ReplayOutput, TheRunsLinesLeaveThePeaksToTheReport) {
  const ReplayOutput out = sample_output("");
  const std::string text = render_text(out);
  const size_t report_starts = text.find("hbmalloc fragmentation report:");
  ASSERT_NE(report_starts, std::string::npos) << text;
  const std::string run_part = text.substr(0, report_starts);
  EXPECT_EQ(run_part.find("peak"), std::string::npos) << run_part;
  EXPECT_NE(run_part.find("min capacity"), std::string::npos) << run_part;
  EXPECT_EQ(text.substr(report_starts), render_text(out.report));
}

TEST(ReplayOutput, ABadFieldIsNamedByItsPath) {
  const json good = sample_output("policy:cca");
  const auto message = [](const json& j) {
    try {
      read_back(j);
    } catch (const json_io::FieldError& e) {
      return e.where() + ": " + e.what;
    }
    return std::string("accepted");
  };
  json j = good;
  j["vmm"]["create"] = -1;
  EXPECT_EQ(message(j), "vmm.create: expected a non-negative integer");
  j = good;
  j.erase("native");
  EXPECT_EQ(message(j), "native: missing");
  j = good;
  j["fidelity"] = {{"recorded", 1}};
  EXPECT_EQ(message(j), "fidelity.replayed: missing");
  j = good;
  j["report"]["maps"][0]["segments"][0]["blocks"][0][1] = 0;
  EXPECT_EQ(message(j), "report.maps[0].segments[0].blocks[0]: blocks do not tile the segment");
}

}  // namespace
}  // namespace hbmalloc::report

// JSON lines: round trips, hand-written files with sparse ids and comments,
// and errors that name the line.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "support/trace_samples.h"
#include "trace/jsonl_format.h"
#include "trace/read_trace.h"

namespace hbmalloc::testing {
namespace {

using trace::read_jsonl;
using trace::write_jsonl;

constexpr const char* kHeader = R"({"hbmalloc_trace": 1, "recorder": "hand"})"
                                "\n";

TEST(Jsonl, RoundTripKeepsEveryFieldAndFigure) {
  Trace t = SampleTrace();
  std::string text = write_jsonl(t);
  Trace back = read_jsonl(text, "t.jsonl");
  EXPECT_EQ(back.format, "jsonl");
  ExpectSameTrace(t, back);
  EXPECT_EQ(write_jsonl(back), text);
}

TEST(Jsonl, FileRoundTripThroughTheDispatcher) {
  std::string path = ::testing::TempDir() + "/jsonl_roundtrip.csv";  // the name does not matter
  trace::write_jsonl_file(SampleTrace(), path);
  Trace back = trace::read_trace_file(path);
  EXPECT_EQ(back.format, "jsonl");
  ExpectSameTrace(SampleTrace(), back);
  std::remove(path.c_str());
}

TEST(Jsonl, HandWrittenTraceWithSparseIdsCommentsAndBlankLines) {
  std::string text = std::string("# made by hand\n\n") +
                     R"({"hbmalloc_trace": 1, "capacity": 1000, "settings": {"policy": "hbm", "max_split_size_mb": 20}})" "\r\n"
                     R"({"action": "live_block", "id": 100, "size": 64, "requested": 60, "addr": "0x7f00"})" "\n"
                     "   # indented comment\n"
                     R"({"action": "alloc", "id": 7, "size": 4096, "stream": "0x10", "t": 5})" "\n"
                     R"({"action": "alloc", "id": 3, "size": 100, "device": 1})" "\n"
                     R"({"action": "free", "id": 7})" "\n"
                     R"({"action": "alloc", "id": 7, "size": 10})" "\n"
                     R"({"action": "free_requested", "id": 100})" "\n"
                     R"({"action": "free_completed", "id": 100})" "\n"
                     R"({"action": "segment_alloc", "size": 8192})" "\n";
  Trace t = read_jsonl(text, "hand.jsonl");
  EXPECT_EQ(t.capacity, 1000u);
  EXPECT_TRUE(t.has_history);
  ASSERT_EQ(t.settings.size(), 2u);
  EXPECT_EQ(t.settings[1], (std::pair<std::string, std::string>{"max_split_size_mb", "20"}));
  ASSERT_EQ(t.devices.size(), 2u);
  const DeviceTrace& d0 = t.devices[0];
  ASSERT_EQ(d0.live_at_start.size(), 1u);
  EXPECT_EQ(d0.live_at_start[0].id, 0u);
  EXPECT_EQ(d0.live_at_start[0].addr, 0x7f00u);
  ASSERT_EQ(d0.events.size(), 6u);
  EXPECT_EQ(d0.events[0].id, 1u);  // file id 7
  EXPECT_EQ(d0.events[0].stream, 0x10u);
  EXPECT_EQ(d0.events[0].time_us, 5);
  EXPECT_EQ(d0.events[1].id, 1u);  // the free of 7
  EXPECT_EQ(d0.events[2].id, 2u);  // 7 again, a new block
  EXPECT_EQ(d0.events[3].id, 0u);
  EXPECT_EQ(d0.events[4].id, 0u);
  EXPECT_EQ(d0.events[5].id, trace::kNoBlock);
  EXPECT_EQ(d0.block_count, 3u);
  EXPECT_TRUE(d0.has_segment_picture);  // it has a segment event
  EXPECT_EQ(t.devices[1].device, 1);
  EXPECT_EQ(t.devices[1].events[0].id, 0u);  // ids are per device
  EXPECT_FALSE(t.devices[1].has_segment_picture);

  trace::TraceFigures f = trace::figures_of(d0);
  EXPECT_EQ(f.peak_requested, 60u + 4096u);
  EXPECT_EQ(f.native_peak_reserved, 8192u);
}

TEST(Jsonl, FreeOfABlockNeverAllocatedNamesTheLine) {
  std::string text = std::string(kHeader) + R"({"action": "alloc", "id": 1, "size": 8})" "\n"
                     R"({"action": "free_completed", "id": 7})" "\n";
  EXPECT_EQ(ErrorOf([&] { read_jsonl(text, "f.jsonl"); }),
            "invalid argument: f.jsonl:3: frees block 7 that was never allocated");
}

TEST(Jsonl, BlockLifeErrors) {
  std::string twice = std::string(kHeader) + R"({"action": "alloc", "id": 1, "size": 8})" "\n"
                      R"({"action": "free", "id": 1})" "\n"
                      R"({"action": "free", "id": 1})" "\n";
  EXPECT_NE(ErrorOf([&] { read_jsonl(twice, "f"); }).find("f:4: frees block 1 that was already freed"),
            std::string::npos);
  std::string live = std::string(kHeader) + R"({"action": "alloc", "id": 1, "size": 8})" "\n"
                     R"({"action": "alloc", "id": 1, "size": 8})" "\n";
  EXPECT_NE(ErrorOf([&] { read_jsonl(live, "f"); }).find("f:3: allocates block 1 that is already live"),
            std::string::npos);
  std::string late = std::string(kHeader) + R"({"action": "alloc", "id": 1, "size": 8})" "\n"
                     R"({"action": "live_block", "id": 2, "size": 8})" "\n";
  EXPECT_NE(ErrorOf([&] { read_jsonl(late, "f"); }).find("f:3: live_block lines must come before"),
            std::string::npos);
  std::string segment = std::string(kHeader) + R"({"action": "segment", "blocks": [{"id": 4}]})" "\n";
  EXPECT_NE(ErrorOf([&] { read_jsonl(segment, "f"); }).find("f:2: segment block names block 4 that is not live"),
            std::string::npos);
}

TEST(Jsonl, BadLinesNameTheLineAndTheProblem) {
  struct Case {
    std::string line;
    std::string expected;
  };
  const Case cases[] = {
      {"{not json", "f:2: not valid JSON"},
      {"[1, 2]", "f:2: each line must be a JSON object"},
      {R"({"id": 1})", "f:2: missing \"action\""},
      {R"({"action": "allocate", "id": 1})", "f:2: unknown action \"allocate\""},
      {R"({"action": "alloc", "size": 4})", "f:2: alloc needs an \"id\""},
      {R"({"action": "oom", "id": 4})", "f:2: oom takes no \"id\""},
      {R"({"action": "alloc", "id": 1, "szie": 4})", "f:2: unknown field \"szie\""},
      {R"({"action": "alloc", "id": -1})", "f:2: \"id\" must be a non-negative integer"},
      {R"({"action": "alloc", "id": 1, "size": 1.5})", "f:2: \"size\" must be a non-negative integer"},
      {R"({"action": "alloc", "id": 1, "size": 18446744073709551616})", "f:2: \"size\" must be"},
      {R"({"action": "alloc", "id": 1, "device": 1024})", "f:2: device 1024 out of range"},
      {R"({"action": "alloc", "id": 1, "device": -1})", "f:2: device -1 out of range"},
      {R"({"action": "alloc", "id": 1, "t": "soon"})", "f:2: \"t\" must be an integer"},
      {R"({"action": "live_block", "id": 1, "state": "busy"})", "f:2: unknown block state \"busy\""},
      {R"({"action": "segment", "at": "middle"})", "f:2: \"at\" must be \"start\" or \"end\""},
      {R"({"action": "segment", "blocks": 3})", "f:2: \"blocks\" must be an array"},
      {R"({"action": "device", "segment_picture": 1})", "f:2: \"segment_picture\" must be true or false"},
      {std::string(R"({"action": "marker", "addr": [)") + std::string(100000, '[') , "f:2: JSON nested deeper than 256 levels"},
  };
  for (const Case& c : cases) {
    std::string message = ErrorOf([&] { read_jsonl(std::string(kHeader) + c.line + "\n", "f"); });
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.line.substr(0, 80) << " -> " << message;
  }
}

TEST(Jsonl, HeaderErrors) {
  EXPECT_NE(ErrorOf([] { read_jsonl("", "f"); }).find("f: no JSON lines header"), std::string::npos);
  EXPECT_NE(ErrorOf([] { read_jsonl("# only a comment\n", "f"); }).find("no JSON lines header"), std::string::npos);
  EXPECT_NE(ErrorOf([] { read_jsonl(R"({"action": "alloc"})", "f"); }).find("f:1: unknown field \"action\""),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { read_jsonl(R"({"hbmalloc_trace": 2})", "f"); }).find("version 2"), std::string::npos);
  EXPECT_NE(ErrorOf([] { read_jsonl(R"({"hbmalloc_trace": 1, "settings": []})", "f"); }).find("\"settings\" must be"),
            std::string::npos);
}

TEST(Jsonl, BytesThatAreNotUtf8AreWrittenReplaced) {
  Trace t;
  t.recorder = "bad \xff\xfe name";
  t.settings = {{"k\x80", "v"}};
  Trace back = read_jsonl(write_jsonl(t), "u.jsonl");
  EXPECT_EQ(back.recorder, "bad \xEF\xBF\xBD\xEF\xBF\xBD name");  // U+FFFD twice
  ASSERT_EQ(back.settings.size(), 1u);
}

TEST(Jsonl, LooksLikeJsonlNeedsTheHeaderFirst) {
  EXPECT_TRUE(trace::looks_like_jsonl("# c\n\n  {\"hbmalloc_trace\": 1}\n"));
  EXPECT_FALSE(trace::looks_like_jsonl("{\"traceEvents\": []}\n{\"hbmalloc_trace\": 1}"));
  EXPECT_FALSE(trace::looks_like_jsonl(""));
}

}  // namespace
}  // namespace hbmalloc::testing

// .hbt: round trips, the incremental writer, and a reader that refuses every
// malformed file with a message naming the record.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>

#include "support/trace_samples.h"
#include "record/hbt_writer.h"
#include "trace/read_trace.h"

namespace hbmalloc::testing {
namespace {

using trace::HbtRecord;
using trace::read_hbt;
using trace::write_hbt;

// Hand-built files, to reach what the writer never produces.
void Put(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
std::string FileHeader(uint16_t major = 1, uint16_t minor = 0) {
  std::string out(trace::kHbtMagic);
  Put(out, major, 2);
  Put(out, minor, 2);
  Put(out, 0, 4);
  return out;
}
std::string Record(uint16_t type, const std::string& payload) {
  std::string out;
  Put(out, type, 2);
  Put(out, 0, 2);
  Put(out, payload.size(), 4);
  return out + payload;
}
std::string HeaderRecord() {
  std::string p;
  Put(p, 1, 4);  // has history
  Put(p, 0, 8);
  Put(p, 4, 4);
  p += "test";
  Put(p, 0, 4);
  return Record(1, p);
}
std::string DeviceRecord(uint16_t device) {
  std::string p;
  Put(p, device, 2);
  Put(p, 0, 2);
  return Record(2, p);
}
std::string EventRecord(Action action, uint16_t device, uint32_t id, uint64_t size) {
  std::string p;
  Put(p, static_cast<uint8_t>(action), 1);
  Put(p, 0, 1);
  Put(p, device, 2);
  Put(p, id, 4);
  Put(p, size, 8);
  Put(p, 0, 8 * 3);
  return Record(5, p);
}
std::string Start() { return FileHeader() + HeaderRecord() + DeviceRecord(0); }
// `file` with the end record a finished writer adds (it counts the records before it).
std::string WithEnd(const std::string& file) {
  uint64_t records = 0;
  for (size_t at = 16; at + 8 <= file.size(); ++records) {
    uint32_t length = 0;
    for (int i = 0; i < 4; ++i) length |= uint32_t{static_cast<unsigned char>(file[at + 4 + i])} << (8 * i);
    at += 8 + length;
  }
  std::string count;
  Put(count, records, 8);
  return file + Record(6, count);
}

TEST(Hbt, RoundTripKeepsEveryFieldAndFigure) {
  Trace t = SampleTrace();
  std::string bytes = write_hbt(t);
  Trace back = read_hbt(bytes, "mem.hbt");
  EXPECT_EQ(back.format, "hbt");
  EXPECT_EQ(back.source, "mem.hbt");
  ExpectSameTrace(t, back);
  // Writing what was read gives the same bytes.
  EXPECT_EQ(write_hbt(back), bytes);
}

TEST(Hbt, EmptyTraceRoundTrips) {
  Trace t;
  Trace back = read_hbt(write_hbt(t), "empty.hbt");
  ExpectSameTrace(t, back);
  EXPECT_FALSE(back.capacity.has_value());
}

TEST(Hbt, FileRoundTripThroughTheDispatcher) {
  std::string path = ::testing::TempDir() + "/hbt_roundtrip.json";  // the name does not matter
  trace::write_hbt_file(SampleTrace(), path);
  Trace back = trace::read_trace_file(path);
  EXPECT_EQ(back.format, "hbt");
  ExpectSameTrace(SampleTrace(), back);
  std::remove(path.c_str());
}

TEST(Hbt, IncrementalWriterToAFileReadsBackAfterEachFlush) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  auto contents = [&] {
    std::fflush(f);
    long end = std::ftell(f);
    std::string bytes(static_cast<size_t>(end), '\0');
    std::rewind(f);
    EXPECT_EQ(std::fread(bytes.data(), 1, bytes.size(), f), bytes.size());
    std::fseek(f, 0, SEEK_END);
    return bytes;
  };
  {
    trace::HbtWriter w(f, "tmpfile", /*flush_every=*/2);
    w.header({"recorder", uint64_t{1} << 30, true, {{"k", "v"}}});
    w.device(1, false);
    w.event(1, MakeEvent(Action::kAlloc, 0, 100, 0x10));
    // Flushed every 2 records, but not finished: the reader says the file is incomplete.
    std::string partial = contents();
    EXPECT_EQ(partial.size(), 16 + 46 + 12 + 48u);  // file header, header, device, event
    std::string message = ErrorOf([&] { read_hbt(partial, "partial.hbt"); });
    EXPECT_NE(message.find("partial.hbt: incomplete: no end record after record 2"), std::string::npos) << message;
    EXPECT_NE(message.find("killed mid-write"), std::string::npos) << message;
    w.event(1, MakeEvent(Action::kFree, 0, 100, 0x10));
  }  // the destructor finishes the file
  Trace t = read_hbt(contents(), "done.hbt");
  ASSERT_EQ(t.devices.size(), 1u);
  EXPECT_EQ(t.devices[0].device, 1);
  EXPECT_EQ(t.devices[0].events.size(), 2u);
  EXPECT_EQ(t.capacity, uint64_t{1} << 30);
  EXPECT_EQ(t.settings.size(), 1u);
  std::fclose(f);
}

TEST(Hbt, WriterRefusesRecordsBeforeTheHeaderAndBadDevices) {
  std::string out;
  trace::HbtWriter w(out);
  EXPECT_NE(ErrorOf([&] { w.event(0, MakeEvent(Action::kMarker, trace::kNoBlock, 0)); }).find("before header"),
            std::string::npos);
  w.header({});
  EXPECT_NE(ErrorOf([&] { w.device(5000, false); }).find("device 5000 out of range"), std::string::npos);
}

TEST(Hbt, EveryTruncationIsAnErrorNamingTheCut) {
  std::string bytes = write_hbt(SampleTrace());
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string message = ErrorOf([&] { read_hbt(bytes.substr(0, n), "cut.hbt"); });
    EXPECT_NE(message.find("cut.hbt"), std::string::npos) << n;
    // Past the file header, every cut is a killed recorder's file.
    if (n >= 16 + 8) {
      EXPECT_NE(message.find("killed mid-write"), std::string::npos) << n << ": " << message;
    }
  }
}

TEST(Hbt, CutInsideARecordNamesItsOffset) {
  std::string bytes = Start() + EventRecord(Action::kAlloc, 0, 0, 64);
  std::string cut = bytes + EventRecord(Action::kFree, 0, 0, 64);
  cut.resize(cut.size() - 3);
  std::string message = ErrorOf([&] { read_hbt(cut, "cut.hbt"); });
  EXPECT_NE(message.find("truncated record 3 at byte " + std::to_string(bytes.size())), std::string::npos)
      << message;
  EXPECT_EQ(read_hbt(WithEnd(bytes), "whole.hbt").devices[0].events.size(), 1u);
}

TEST(Hbt, EndRecordMustBeLastAndCountTheRecords) {
  std::string file = WithEnd(Start());
  EXPECT_NE(ErrorOf([&] { read_hbt(file + DeviceRecord(1), "x.hbt"); }).find("data after the end record"),
            std::string::npos);
  std::string wrong = file;
  wrong[wrong.size() - 8] = 5;
  EXPECT_NE(ErrorOf([&] { read_hbt(wrong, "x.hbt"); }).find("end record counts 5 records before it, the file has 2"),
            std::string::npos);
}

TEST(Hbt, RandomBytesAfterAValidStartNeverCrash) {
  std::mt19937_64 rng(42);
  int errors = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = Start();
    size_t n = rng() % 200;
    for (size_t j = 0; j < n; ++j) bytes.push_back(static_cast<char>(rng()));
    try {
      read_hbt(bytes, "random.hbt");
    } catch (const Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find("random.hbt"), std::string::npos);
    }
  }
  EXPECT_GT(errors, 1900);
  EXPECT_NE(ErrorOf([] { read_hbt("\x89HBT\r\n\x1a\n garbage", "g.hbt"); }), "");
  EXPECT_NE(ErrorOf([] { read_hbt("not hbt at all", "g.hbt"); }).find("not an .hbt file"), std::string::npos);
}

TEST(Hbt, FreeOfABlockNeverAllocatedNamesTheRecord) {
  std::string bytes = Start() + EventRecord(Action::kAlloc, 0, 0, 64) + EventRecord(Action::kFree, 0, 7, 64);
  std::string message = ErrorOf([&] { read_hbt(WithEnd(bytes), "x.hbt"); });
  EXPECT_NE(message.find("x.hbt: record 3 at byte 108"), std::string::npos) << message;
  EXPECT_NE(message.find("frees block 7 that was never allocated"), std::string::npos) << message;
}

TEST(Hbt, DoubleFreeNamesTheRecord) {
  std::string bytes = Start() + EventRecord(Action::kAlloc, 0, 0, 64) + EventRecord(Action::kFree, 0, 0, 64) +
                      EventRecord(Action::kFreeRequested, 0, 0, 64);
  std::string message = ErrorOf([&] { read_hbt(WithEnd(bytes), "x.hbt"); });
  EXPECT_NE(message.find("record 4"), std::string::npos) << message;
  EXPECT_NE(message.find("frees block 0 that was already freed"), std::string::npos) << message;
}

TEST(Hbt, IdsMustBeDense) {
  std::string message = ErrorOf([] { read_hbt(Start() + EventRecord(Action::kAlloc, 0, 1, 64), "x.hbt"); });
  EXPECT_NE(message.find("expected the next id 0"), std::string::npos) << message;
  message = ErrorOf([] { read_hbt(Start() + EventRecord(Action::kOom, 0, 3, 64), "x.hbt"); });
  EXPECT_NE(message.find("only alloc and frees name a block"), std::string::npos) << message;
}

TEST(Hbt, DeviceNumbersAreBoundedAndDeclared) {
  std::string message = ErrorOf([] { read_hbt(FileHeader() + HeaderRecord() + DeviceRecord(4096), "x.hbt"); });
  EXPECT_NE(message.find("device 4096 out of range"), std::string::npos) << message;
  message = ErrorOf([] { read_hbt(Start() + EventRecord(Action::kMarker, 2, UINT32_MAX, 0), "x.hbt"); });
  EXPECT_NE(message.find("device 2 used before its device record"), std::string::npos) << message;
  message = ErrorOf([] { read_hbt(Start() + DeviceRecord(0), "x.hbt"); });
  EXPECT_NE(message.find("a second device record"), std::string::npos) << message;
}

TEST(Hbt, CountsMustFitTheRecord) {
  std::string p;
  Put(p, 0, 4);
  Put(p, 0, 8);
  Put(p, 0, 4);
  Put(p, 0xffffffff, 4);  // settings
  std::string message = ErrorOf([&] { read_hbt(FileHeader() + Record(1, p), "x.hbt"); });
  EXPECT_NE(message.find("4294967295 settings cannot fit"), std::string::npos) << message;

  std::string name;
  Put(name, 0, 4);
  Put(name, 0, 8);
  Put(name, 1000, 4);  // recorder name length
  Put(name, 0, 4);
  message = ErrorOf([&] { read_hbt(FileHeader() + Record(1, name), "x.hbt"); });
  EXPECT_NE(message.find("overruns the record"), std::string::npos) << message;

  std::string segment;
  Put(segment, 0, 2);
  Put(segment, 0, 2);
  Put(segment, 0x10000000, 4);  // blocks
  Put(segment, 0, 24);
  message = ErrorOf([&] { read_hbt(Start() + Record(4, segment), "x.hbt"); });
  EXPECT_NE(message.find("268435456 segment blocks cannot fit"), std::string::npos) << message;

  message = ErrorOf([&] { read_hbt(Start() + Record(5, std::string(10, '\0')), "x.hbt"); });
  EXPECT_NE(message.find("event record of 10 bytes, needs at least 40"), std::string::npos) << message;
}

TEST(Hbt, UnknownRecordTypesAndLongerRecordsFromANewerMinorAreSkipped) {
  std::string longer = EventRecord(Action::kAlloc, 0, 0, 64);
  longer[4] = static_cast<char>(longer[4] + 8);  // payload length 48: 8 bytes a newer writer added
  longer += std::string(8, '\x55');
  std::string bytes = WithEnd(FileHeader(1, 7) + HeaderRecord() + Record(999, "whatever") + DeviceRecord(0) + longer);
  Trace t = read_hbt(bytes, "newer.hbt");
  ASSERT_EQ(t.devices.size(), 1u);
  ASSERT_EQ(t.devices[0].events.size(), 1u);
  EXPECT_EQ(t.devices[0].events[0].size, 64u);
}

TEST(Hbt, OtherMajorVersionsAndMisplacedHeadersAreRefused) {
  EXPECT_NE(ErrorOf([] { read_hbt(FileHeader(2, 0) + HeaderRecord(), "x.hbt"); }).find("version 2.0"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { read_hbt(FileHeader() + DeviceRecord(0), "x.hbt"); }).find("first record must be the header"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { read_hbt(FileHeader(), "x.hbt"); }).find("no header record"), std::string::npos);
  EXPECT_NE(ErrorOf([] { read_hbt(Start() + HeaderRecord(), "x.hbt"); }).find("a second header"),
            std::string::npos);
}

TEST(Hbt, LiveBlocksComeBeforeEvents) {
  std::string live;
  Put(live, 0, 2);
  Put(live, 0, 2);
  Put(live, 1, 4);  // id 1 while 1 block exists: dense
  Put(live, 0, 32);
  std::string message =
      ErrorOf([&] { read_hbt(Start() + EventRecord(Action::kAlloc, 0, 0, 8) + Record(3, live), "x.hbt"); });
  EXPECT_NE(message.find("live block record after the device's first event"), std::string::npos) << message;
}

}  // namespace
}  // namespace hbmalloc::testing

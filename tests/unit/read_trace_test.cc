// The dispatcher: the format comes from the content, never from the name;
// gzip is inflated with a cap; files that are none of the formats are named.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <string>

#include "support/trace_samples.h"
#include "trace/gzip_input.h"
#include "record/hbt_writer.h"
#include "trace/jsonl_format.h"
#include "trace/read_trace.h"

namespace hbmalloc::testing {
namespace {

using trace::read_trace_bytes;

std::string Gzip(const std::string& bytes) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, bytes.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

const char* kRmm = "Thread,Time,Action,Pointer,Size,Stream\n1,10:00:00.000000,allocate,0x10,8,0x0\n";
const char* kKineto =
    R"({"traceEvents": [{"name": "[memory]", "ph": "i", "ts": 1, "args": {"Device Type": 1, "Device Id": 0, "Bytes": 8}}]})";

TEST(ReadTrace, DetectsEachFormatFromContentWhateverTheName) {
  EXPECT_EQ(read_trace_bytes(trace::write_hbt(SampleTrace()), "trace.json").format, "hbt");
  EXPECT_EQ(read_trace_bytes(trace::write_jsonl(SampleTrace()), "trace.csv").format, "jsonl");
  EXPECT_EQ(read_trace_bytes(kRmm, "trace.jsonl").format, "rmm-csv");
  EXPECT_EQ(read_trace_bytes(kKineto, "trace.hbt").format, "kineto");
  EXPECT_EQ(read_trace_bytes(std::string("\xef\xbb\xbf  \n") + kKineto, "bom.json").format, "kineto");
  EXPECT_EQ(read_trace_bytes(Gzip(trace::write_jsonl(SampleTrace())), "t.pickle").format, "jsonl");
  EXPECT_EQ(read_trace_bytes(Gzip(trace::write_hbt(SampleTrace())), "t.gz").format, "hbt");
  ExpectSameTrace(read_trace_bytes(Gzip(trace::write_hbt(SampleTrace())), "t.gz"), SampleTrace());
}

TEST(ReadTrace, APickleNamedJsonGoesToThePickleReader) {
  // protocol 4, the int 1, STOP: a pickle, but no memory snapshot.
  std::string message = ErrorOf([] { read_trace_bytes(std::string("\x80\x04K\x01.", 5), "snapshot.json"); });
  EXPECT_NE(message.find("snapshot.json"), std::string::npos) << message;
  EXPECT_EQ(message.find("unknown trace format"), std::string::npos) << message;
  EXPECT_EQ(message.find("JSON"), std::string::npos) << message;
}

TEST(ReadTrace, EmptyUnknownAndMissingFiles) {
  EXPECT_EQ(ErrorOf([] { read_trace_bytes("", "e.pickle"); }), "invalid argument: e.pickle: empty file");
  EXPECT_EQ(ErrorOf([] { read_trace_bytes("hello\n", "h.txt"); }),
            "invalid argument: h.txt: unknown trace format (expected a PyTorch snapshot pickle, a profiler "
            "trace, an RMM log, .hbt or JSON lines)");
  EXPECT_NE(ErrorOf([] { read_trace_bytes(R"({"other": 1})", "o.json"); }).find("unknown trace format"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { read_trace_bytes("   \n\n", "blank"); }).find("unknown trace format"), std::string::npos);
  std::string missing = ::testing::TempDir() + "/no_such_trace.hbt";
  EXPECT_EQ(ErrorOf([&] { trace::read_trace_file(missing); }),
            "invalid argument: " + missing + ": cannot open: No such file or directory");
  EXPECT_NE(ErrorOf([] { trace::read_trace_file(::testing::TempDir()); }).find("cannot read"), std::string::npos);
}

TEST(ReadTrace, GzipProblemsAreNamed) {
  std::string gz = Gzip(trace::write_jsonl(SampleTrace()));
  for (size_t cut : {size_t{2}, size_t{10}, gz.size() / 2, gz.size() - 1}) {
    std::string message = ErrorOf([&] { read_trace_bytes(gz.substr(0, cut), "cut.gz"); });
    EXPECT_NE(message.find("cut.gz: truncated gzip stream"), std::string::npos) << cut << ": " << message;
  }
  std::string corrupt = gz;
  corrupt[12] = static_cast<char>(corrupt[12] ^ 0x5a);
  corrupt[13] = static_cast<char>(corrupt[13] ^ 0xa5);
  EXPECT_NE(ErrorOf([&] { read_trace_bytes(corrupt, "bad.gz"); }).find("bad.gz:"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { read_trace_bytes(gz + "junk", "j.gz"); }).find("garbage after the gzip stream"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] { read_trace_bytes(Gzip(gz), "gg.gz"); }).find("gzip inside gzip"), std::string::npos);
  // Two members, as `cat a.gz b.gz` makes, are one stream.
  std::string text = trace::write_jsonl(SampleTrace());
  EXPECT_EQ(trace::inflate_gzip(Gzip(text.substr(0, 100)) + Gzip(text.substr(100)), "two.gz"), text);
}

TEST(ReadTrace, DecompressionBombIsRefused) {
  std::string zeros(size_t{8} << 20, '\0');
  std::string bomb = Gzip(zeros);
  EXPECT_LT(bomb.size(), 20000u);
  std::string message = ErrorOf([&] { trace::inflate_gzip(bomb, "bomb.gz", 1 << 20); });
  EXPECT_NE(message.find("bomb.gz: gzip stream inflates past 1048576 bytes"), std::string::npos) << message;
  EXPECT_EQ(trace::inflate_gzip(bomb, "ok.gz", zeros.size()).size(), zeros.size());  // exactly at the cap
}

}  // namespace
}  // namespace hbmalloc::testing

namespace hbmalloc::testing {
namespace {

using trace::InputLimits;
using trace::kDefaultMaxInput;
using trace::kInflateFloor;
using trace::read_trace_file;

// The input limits: a file past --max-input is refused by its size, a stream
// that starts no format at its first bytes, and a gzip by the ratio rule
// unless the user chose the cap.
TEST(InputLimits, FilesStreamsAndGzipAreBounded) {
  InputLimits defaults;
  EXPECT_EQ(defaults.inflate_cap(1000), kInflateFloor);                 // small files: the floor
  EXPECT_EQ(defaults.inflate_cap(10ull << 20), 1000ull << 20);          // 100 times the compressed size
  EXPECT_EQ(defaults.inflate_cap(1ull << 30), kDefaultMaxInput);        // never past the input cap
  InputLimits chosen{512ull << 20, true};
  EXPECT_EQ(chosen.inflate_cap(1000), 512ull << 20);                    // the user's cap, no ratio

  const std::string dir = ::testing::TempDir();
  const std::string big = dir + "/big.jsonl";
  {
    std::FILE* f = std::fopen(big.c_str(), "wb");
    const std::string text = trace::write_jsonl(SampleTrace());
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  const std::string message = ErrorOf([&] { read_trace_file(big, InputLimits{100, true}); });
  EXPECT_NE(message.find("big.jsonl"), std::string::npos) << message;
  EXPECT_NE(message.find("--max-input"), std::string::npos) << message;
  EXPECT_EQ(read_trace_file(big).format, "jsonl");

  EXPECT_NE(ErrorOf([] { read_trace_file("/dev/zero"); }).find("unknown trace format"), std::string::npos);

  // A gzip of 64 MiB of zeros is refused from its first inflated bytes.
  const std::string zeros = Gzip(std::string(64ull << 20, '\0'));
  EXPECT_NE(ErrorOf([&] { read_trace_bytes(zeros, "z.gz"); }).find("unknown trace format"), std::string::npos);
}

}  // namespace
}  // namespace hbmalloc::testing

// .hbt: hbmalloc's own binary trace. A 16-byte file header (magic, version),
// then little-endian records, each prefixed by its type and payload length so
// a reader skips record types a newer minor version added. The format is
// specified byte by byte in docs/hbt-format.md; read_hbt is in read_trace.h.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "trace/trace.h"

namespace hbmalloc::trace {

// PNG-style: a high first byte (never a pickle's 0x80, never text), then a
// CR LF / ^Z / LF that text-mode transfers would mangle.
inline constexpr std::string_view kHbtMagic{"\x89HBT\r\n\x1a\n", 8};
constexpr uint16_t kHbtMajor = 1;  // a reader refuses other majors
constexpr uint16_t kHbtMinor = 0;  // newer minors only add record types or trailing fields

bool is_hbt(std::string_view bytes);

enum class HbtRecord : uint16_t {
  kHeader = 1,
  kDevice = 2,
  kLiveBlock = 3,
  kSegment = 4,
  kEvent = 5,
  kEnd = 6,  // last: a file without it was cut short
};

enum class SegmentWhen : uint8_t { kAtStart = 0, kAtEnd = 1 };

struct HbtHeader {
  std::string recorder;
  std::optional<uint64_t> capacity;
  bool has_history = true;
  std::vector<std::pair<std::string, std::string>> settings;
};

// Writes .hbt records one at a time, to a string or a FILE*. A runtime
// recorder calls header() once, device() when a device first appears, then
// event() per allocator event, and finish() at the end (the destructor does
// if it was not called). A process killed mid-way leaves a file without the
// end record, which the reader refuses with a message saying so.
class HbtWriter {
 public:
  explicit HbtWriter(std::string& out);
  // Does not own `out`; flushes it every `flush_every` records and on flush().
  HbtWriter(std::FILE* out, std::string name, uint32_t flush_every = 1024);
  ~HbtWriter();  // finishes; a failure there is lost, call finish() to see it
  HbtWriter(const HbtWriter&) = delete;
  HbtWriter& operator=(const HbtWriter&) = delete;

  void header(const HbtHeader& h);  // first: the file header and the header record
  void device(int number, bool has_segment_picture);
  void live_block(int device, const BlockInfo& b);
  void segment(int device, SegmentWhen when, const SegmentInfo& s);
  void event(int device, const Event& e);
  void flush();   // throws Error naming the file when a write failed
  void finish();  // the end record, then flush; nothing may follow

 private:
  void begin(HbtRecord type, int device);  // checks header() came first and the device number
  void emit();  // sends record_ to the output

  std::string* string_out_ = nullptr;
  std::FILE* file_out_ = nullptr;
  std::string name_;
  uint32_t flush_every_ = 0;
  uint32_t unflushed_ = 0;
  bool started_ = false;
  bool finished_ = false;
  uint64_t records_ = 0;  // written so far, for the end record
  std::string record_;  // the record being built, reused
};

// A whole trace: header, then per device its device record, live blocks and
// segments at start, its events, then the segments at end; then the end record.
void write_hbt(const Trace& trace, HbtWriter& writer);
std::string write_hbt(const Trace& trace);
void write_hbt_file(const Trace& trace, const std::string& path);

}  // namespace hbmalloc::trace

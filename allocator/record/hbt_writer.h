// Writes .hbt (record/hbt_format.h): record by record, as the runtime
// recorder does, or a whole Trace at once.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "record/hbt_format.h"
#include "record/trace.h"

namespace hbmalloc::trace {

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
  // 1.1: a frame and a stack (numbered in the order written), and a block's
  // allocation stack; frames before the stacks naming them.
  void frame(const Frame& f);
  void stack(const std::vector<uint32_t>& frames);
  void block_stack(int device, uint32_t block, uint32_t stack);
  // 1.2: an annotation; and the user metadata of the device's events from
  // its next event record on.
  void annotation(const Annotation& a);
  void user_metadata(int device, const std::string& text);
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

// Reads .hbt (docs/hbt-format.md) into a Trace, checking every record.
#include <cerrno>
#include <cstring>
#include <map>

#include "hbmalloc/error.hpp"
#include "record/hbt_format.h"
#include "trace/read_trace.h"
#include "trace/trace_assembler.h"

namespace hbmalloc::trace {
namespace {

using namespace hbt;

// --- decoding ----------------------------------------------------------------

// Little-endian reads from one record's payload. Callers check the fixed part's
// length first; variable parts (strings, block lists) are checked here.
class Cursor {
 public:
  Cursor(std::string_view bytes, const std::string& where) : bytes_(bytes), where_(where) {}
  size_t left() const { return bytes_.size() - pos_; }
  uint8_t u8() { return static_cast<uint8_t>(take(1)[0]); }
  uint16_t u16() { return static_cast<uint16_t>(little(take(2))); }
  uint32_t u32() { return static_cast<uint32_t>(little(take(4))); }
  uint64_t u64() { return little(take(8)); }
  std::string str(const char* what) {
    uint32_t n = u32();
    if (n > left())
      fail(std::string(what) + " of " + std::to_string(n) + " bytes overruns the record (" +
           std::to_string(left()) + " left)");
    return std::string(take(n));
  }
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(ErrorCode::kInvalidArgument, where_ + ": " + problem);
  }

 private:
  std::string_view take(size_t n) {
    if (n > left()) fail("record payload too short");
    std::string_view s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  static uint64_t little(std::string_view s) {
    uint64_t v = 0;
    for (size_t i = 0; i < s.size(); ++i) v |= uint64_t{static_cast<unsigned char>(s[i])} << (8 * i);
    return v;
  }
  std::string_view bytes_;
  size_t pos_ = 0;
  const std::string& where_;
};

// Per device while reading: the trace so far and which ids were freed.
struct DeviceState {
  DeviceTrace trace;
  std::vector<bool> freed;  // by id
};

class HbtReader {
 public:
  HbtReader(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  Trace read() {
    check_file_header();
    size_t offset = kFileHeaderBytes;
    uint64_t index = 0;
    while (offset < bytes_.size()) {
      size_t left = bytes_.size() - offset;
      where_ = source_ + ": record " + std::to_string(index) + " at byte " + std::to_string(offset);
      if (left < kRecordHeaderBytes) truncated(index, offset, kRecordHeaderBytes, left);
      Cursor head(bytes_.substr(offset, kRecordHeaderBytes), where_);
      uint16_t type = head.u16();
      head.u16();  // flags: none defined yet
      uint32_t length = head.u32();
      if (length > left - kRecordHeaderBytes)
        truncated(index, offset, kRecordHeaderBytes + uint64_t{length}, left);
      std::string_view payload = bytes_.substr(offset + kRecordHeaderBytes, length);
      if (index == 0 && type != static_cast<uint16_t>(HbtRecord::kHeader))
        fail("the first record must be the header (type 1), found type " + std::to_string(type));
      if (seen_end_) fail("data after the end record");
      if (type == static_cast<uint16_t>(HbtRecord::kEnd)) {
        end(payload, index);
      } else {
        record(type, payload);
      }
      offset += kRecordHeaderBytes + length;
      ++index;
    }
    if (index == 0) throw Error(ErrorCode::kInvalidArgument, source_ + ": .hbt file has no header record");
    if (!seen_end_)
      throw Error(ErrorCode::kInvalidArgument,
                  source_ + ": incomplete: no end record after record " + std::to_string(index - 1) +
                      " (file ends at byte " + std::to_string(offset) +
                      "): the recorder was probably killed mid-write, or is still writing");
    return finish();
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(ErrorCode::kInvalidArgument, where_ + ": " + problem);
  }
  [[noreturn]] void truncated(uint64_t index, size_t offset, uint64_t needed, size_t left) const {
    throw Error(ErrorCode::kInvalidArgument,
                source_ + ": truncated record " + std::to_string(index) + " at byte " +
                    std::to_string(offset) + " (needs " + std::to_string(needed) + " bytes, " +
                    std::to_string(left) + " left): the recorder was probably killed mid-write");
  }

  void check_file_header() {
    if (bytes_.size() < kFileHeaderBytes || bytes_.substr(0, kHbtMagic.size()) != kHbtMagic)
      throw Error(ErrorCode::kInvalidArgument,
                  source_ + ": not an .hbt file (bad magic or shorter than the 16-byte file header)");
    where_ = source_;
    Cursor c(bytes_.substr(kHbtMagic.size(), kFileHeaderBytes - kHbtMagic.size()), where_);
    uint16_t major = c.u16();
    uint16_t minor = c.u16();
    if (major != kHbtMajor)
      fail(".hbt format version " + std::to_string(major) + "." + std::to_string(minor) +
           "; this reader knows version " + std::to_string(kHbtMajor) + ".x");
  }

  void need(std::string_view payload, size_t bytes, const char* what) const {
    if (payload.size() < bytes)
      fail(std::string(what) + " record of " + std::to_string(payload.size()) +
           " bytes, needs at least " + std::to_string(bytes));
  }

  void record(uint16_t type, std::string_view payload) {
    switch (static_cast<HbtRecord>(type)) {
      case HbtRecord::kHeader:
        return header(payload);
      case HbtRecord::kDevice:
        return device(payload);
      case HbtRecord::kLiveBlock:
        return live_block(payload);
      case HbtRecord::kSegment:
        return segment(payload);
      case HbtRecord::kEvent:
        return event(payload);
      case HbtRecord::kFrame:
        return frame(payload);
      case HbtRecord::kStack:
        return stack(payload);
      case HbtRecord::kBlockStack:
        return block_stack(payload);
      case HbtRecord::kAnnotation:
        return annotation(payload);
      case HbtRecord::kUserMetadata:
        return user_metadata(payload);
      case HbtRecord::kEnd:
        break;  // handled by read()
    }
    // A record type from a newer minor version: skipped.
  }

  void end(std::string_view payload, uint64_t index) {
    need(payload, kEndBytes, "end");
    uint64_t records = Cursor(payload, where_).u64();
    if (records != index)
      fail("end record counts " + std::to_string(records) + " records before it, the file has " +
           std::to_string(index));
    seen_end_ = true;
  }

  void header(std::string_view payload) {
    if (seen_header_) fail("a second header record");
    seen_header_ = true;
    need(payload, kHeaderMinBytes, "header");
    Cursor c(payload, where_);
    uint32_t flags = c.u32();
    uint64_t capacity = c.u64();
    trace_.has_history = (flags & kHeaderHasHistory) != 0;
    if ((flags & kHeaderHasCapacity) != 0) trace_.capacity = capacity;
    trace_.recorder = c.str("recorder name");
    trace_.settings = text_pairs(c, "setting");
  }

  // u32 N, then N (str key, str value).
  std::vector<std::pair<std::string, std::string>> text_pairs(Cursor& c, const std::string& what) {
    const uint32_t count = c.u32();
    if (uint64_t{count} * 8 > c.left())
      fail(std::to_string(count) + " " + what + "s cannot fit in the " + std::to_string(c.left()) +
           " bytes left in the record");
    std::vector<std::pair<std::string, std::string>> out;
    for (uint32_t i = 0; i < count; ++i) {
      std::string key = c.str((what + " key").c_str());
      std::string value = c.str((what + " value").c_str());
      out.emplace_back(std::move(key), std::move(value));
    }
    return out;
  }

  void frame(std::string_view payload) {
    need(payload, kFrameMinBytes, "frame");
    Cursor c(payload, where_);
    Frame f;
    f.filename = c.str("frame filename");
    f.name = c.str("frame name");
    f.line = static_cast<int64_t>(c.u64());
    trace_.frames.push_back(std::move(f));
  }

  void stack(std::string_view payload) {
    need(payload, kStackMinBytes, "stack");
    Cursor c(payload, where_);
    const uint32_t n = c.u32();
    if (uint64_t{n} * 4 > c.left()) fail("stack of " + std::to_string(n) + " frames overruns the record");
    std::vector<uint32_t> frames(n);
    for (uint32_t& f : frames) {
      f = c.u32();
      if (f >= trace_.frames.size()) fail("stack names frame " + std::to_string(f) + ", not written before it");
    }
    if (trace_.stacks.size() >= kNoStack - 1) fail("more than 2^32 stacks");
    trace_.stacks.push_back(std::move(frames));
  }

  // Checked against the block count once every event is read.
  void block_stack(std::string_view payload) {
    need(payload, kBlockStackBytes, "block stack");
    Cursor c(payload, where_);
    const uint16_t number = c.u16();
    c.u16();
    const uint32_t block = c.u32(), stack = c.u32();
    known_device(number);
    if (stack >= trace_.stacks.size()) fail("block stack names stack " + std::to_string(stack) + ", not written before it");
    block_stacks_.push_back({number, block, stack, where_});
  }

  void annotation(std::string_view payload) {
    need(payload, kAnnotationMinBytes, "annotation");
    Cursor c(payload, where_);
    Annotation a;
    a.device = checked_device(c.u16(), where_);
    c.u16();
    a.time_us = static_cast<int64_t>(c.u64());
    a.fields = text_pairs(c, "annotation field");
    trace_.annotations.push_back(std::move(a));
  }

  // From the device's next event on.
  void user_metadata(std::string_view payload) {
    need(payload, kUserMetadataMinBytes, "user metadata");
    Cursor c(payload, where_);
    const uint16_t number = c.u16();
    c.u16();
    DeviceTrace& d = known_device(number).trace;
    change_user_metadata(d, c.str("user metadata"));
  }

  DeviceState& known_device(uint16_t number) {
    auto it = devices_.find(number);
    if (it == devices_.end())
      fail("device " + std::to_string(number) + " used before its device record");
    return it->second;
  }

  void device(std::string_view payload) {
    need(payload, kDeviceBytes, "device");
    Cursor c(payload, where_);
    int number = checked_device(c.u16(), where_);
    uint16_t flags = c.u16();
    auto [it, inserted] = devices_.try_emplace(number);
    if (!inserted) fail("a second device record for device " + std::to_string(number));
    it->second.trace.device = number;
    it->second.trace.has_segment_picture = (flags & kDeviceHasSegmentPicture) != 0;
  }

  BlockState block_state(uint8_t value) const {
    if (value > kLastBlockState) fail("unknown block state " + std::to_string(value));
    return static_cast<BlockState>(value);
  }

  // A new block id must be the device's next one: ids are dense from 0.
  void take_id(DeviceState& d, uint32_t id, const char* what) {
    if (id != d.trace.block_count)
      fail(std::string(what) + " has block id " + std::to_string(id) + ", expected the next id " +
           std::to_string(d.trace.block_count) + " (ids are dense)");
    if (id == kNoBlock) fail("too many blocks");
    ++d.trace.block_count;
    d.freed.push_back(false);
  }

  void live_block(std::string_view payload) {
    need(payload, kLiveBlockBytes, "live block");
    Cursor c(payload, where_);
    DeviceState& d = known_device(c.u16());
    BlockInfo b;
    b.state = block_state(c.u8());
    c.u8();
    b.id = c.u32();
    b.addr = c.u64();
    b.size = c.u64();
    b.requested = c.u64();
    b.stream = c.u64();
    if (!d.trace.events.empty()) fail("live block record after the device's first event");
    take_id(d, b.id, "live block");
    d.trace.live_at_start.push_back(b);
  }

  void segment(std::string_view payload) {
    need(payload, kSegmentBytes, "segment");
    Cursor c(payload, where_);
    DeviceState& d = known_device(c.u16());
    uint8_t when = c.u8();
    if (when > static_cast<uint8_t>(SegmentWhen::kAtEnd)) fail("unknown segment time " + std::to_string(when));
    uint8_t flags = c.u8();
    uint32_t count = c.u32();
    SegmentInfo s;
    s.small_pool = (flags & kSegmentSmallPool) != 0;
    s.expandable = (flags & kSegmentExpandable) != 0;
    s.addr = c.u64();
    s.size = c.u64();
    s.stream = c.u64();
    if (uint64_t{count} * kSegmentBlockBytes > c.left())
      fail(std::to_string(count) + " segment blocks cannot fit in the " + std::to_string(c.left()) +
           " bytes left in the record");
    s.blocks.resize(count);
    for (BlockInfo& b : s.blocks) {
      b.id = c.u32();
      b.state = block_state(c.u8());
      c.u8();
      c.u16();
      b.addr = c.u64();
      b.size = c.u64();
      b.requested = c.u64();
      b.stream = c.u64();
      if (b.id != kNoBlock && b.id >= d.trace.block_count)
        fail("segment block names block " + std::to_string(b.id) + ", beyond the " +
             std::to_string(d.trace.block_count) + " blocks known so far");
    }
    auto& list = when == static_cast<uint8_t>(SegmentWhen::kAtStart) ? d.trace.segments_at_start
                                                                       : d.trace.segments_at_end;
    list.push_back(std::move(s));
  }

  void event(std::string_view payload) {
    need(payload, kEventBytes, "event");
    Cursor c(payload, where_);
    uint8_t action = c.u8();
    c.u8();
    DeviceState& d = known_device(c.u16());
    if (action > kLastAction) fail("unknown action " + std::to_string(action));
    Event e;
    e.action = static_cast<Action>(action);
    e.id = c.u32();
    e.size = c.u64();
    e.addr = c.u64();
    e.stream = c.u64();
    e.time_us = static_cast<int64_t>(c.u64());
    if (e.action == Action::kAlloc) {
      take_id(d, e.id, "alloc");
    } else if (is_block_action(e.action)) {
      if (e.id >= d.trace.block_count)
        fail("frees block " + std::to_string(e.id) + " that was never allocated");
      if (d.freed[e.id]) fail("frees block " + std::to_string(e.id) + " that was already freed");
      if (e.action == Action::kFree) d.freed[e.id] = true;
    } else if (e.id != kNoBlock) {
      fail(std::string(action_name(e.action)) + " event with block id " + std::to_string(e.id) +
           " (only alloc and frees name a block)");
    }
    d.trace.events.push_back(e);
  }

  Trace finish() {
    for (const auto& [number, block, stack, where] : block_stacks_) {
      DeviceTrace& d = devices_[number].trace;
      if (block >= d.block_count)
        throw Error(ErrorCode::kInvalidArgument,
                    where + ": block stack of block " + std::to_string(block) + ", which device " +
                        std::to_string(number) + " does not have (" + std::to_string(d.block_count) + " blocks)");
      d.block_stacks.resize(d.block_count, kNoStack);
      d.block_stacks[block] = stack;
    }
    trace_.source = source_;
    trace_.format = "hbt";
    for (auto& [number, d] : devices_) trace_.devices.push_back(std::move(d.trace));
    return std::move(trace_);
  }

  std::string_view bytes_;
  const std::string& source_;
  std::string where_;
  bool seen_header_ = false;
  bool seen_end_ = false;
  Trace trace_;
  std::map<int, DeviceState> devices_;
  struct BlockStack {
    uint16_t device;
    uint32_t block, stack;
    std::string where;
  };
  std::vector<BlockStack> block_stacks_;
};

}  // namespace

Trace read_hbt(std::string_view bytes, const std::string& source) {
  return HbtReader(bytes, source).read();
}

}  // namespace hbmalloc::trace

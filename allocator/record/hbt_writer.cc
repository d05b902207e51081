#include "record/hbt_writer.h"

#include <cerrno>
#include <cstring>

#include "hbmalloc/error.hpp"
#include "record/write_file.h"

namespace hbmalloc::trace {
namespace {

using namespace hbt;

// --- encoding ----------------------------------------------------------------

void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
void put_u16(std::string& out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_string(std::string& out, const std::string& s) {
  if (s.size() > UINT32_MAX) throw Error(ErrorCode::kInvalidArgument, ".hbt writer: string over 4 GiB");
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

// Starts a record in `out`; end_record fills in the payload length.
void begin_record(std::string& out, HbtRecord type) {
  out.clear();
  put_u16(out, static_cast<uint16_t>(type));
  put_u16(out, 0);
  put_u32(out, 0);
}
void end_record(std::string& out) {
  size_t length = out.size() - kRecordHeaderBytes;
  if (length > UINT32_MAX) throw Error(ErrorCode::kInvalidArgument, ".hbt writer: record over 4 GiB");
  for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<char>(length >> (8 * i));
}

void put_block(std::string& out, const BlockInfo& b) {
  put_u32(out, b.id);
  put_u8(out, static_cast<uint8_t>(b.state));
  put_u8(out, 0);
  put_u16(out, 0);
  put_u64(out, b.addr);
  put_u64(out, b.size);
  put_u64(out, b.requested);
  put_u64(out, b.stream);
}

}  // namespace

// --- writer --------------------------------------------------------------------

HbtWriter::HbtWriter(std::string& out) : string_out_(&out), name_("hbt buffer") {}

HbtWriter::HbtWriter(std::FILE* out, std::string name, uint32_t flush_every)
    : file_out_(out), name_(std::move(name)), flush_every_(flush_every == 0 ? 1 : flush_every) {}

HbtWriter::~HbtWriter() {
  try {
    if (started_ && !finished_) finish();
  } catch (const Error&) {
    // A destructor cannot report it; finish() called earlier would have.
  }
}

void HbtWriter::begin(HbtRecord type, int device) {
  if (!started_) throw Error(ErrorCode::kInvalidArgument, name_ + ": .hbt writer used before header()");
  if (finished_) throw Error(ErrorCode::kInvalidArgument, name_ + ": .hbt writer used after finish()");
  checked_device(device, name_);
  begin_record(record_, type);
}

void HbtWriter::emit() {
  ++records_;
  if (string_out_ != nullptr) {
    *string_out_ += record_;
    return;
  }
  if (std::fwrite(record_.data(), 1, record_.size(), file_out_) != record_.size())
    throw Error(ErrorCode::kInvalidArgument, name_ + ": write failed: " + std::strerror(errno));
  if (++unflushed_ >= flush_every_) flush();
}

void HbtWriter::flush() {
  unflushed_ = 0;
  if (file_out_ != nullptr && (std::fflush(file_out_) != 0 || std::ferror(file_out_) != 0))
    throw Error(ErrorCode::kInvalidArgument, name_ + ": write failed: " + std::strerror(errno));
}

void HbtWriter::header(const HbtHeader& h) {
  if (started_) throw Error(ErrorCode::kInvalidArgument, name_ + ": .hbt header written twice");
  // The file header and the header record go out as one write.
  started_ = true;
  std::string file_header(kHbtMagic);
  put_u16(file_header, kHbtMajor);
  put_u16(file_header, kHbtMinor);
  put_u32(file_header, 0);
  begin_record(record_, HbtRecord::kHeader);
  put_u32(record_, (h.has_history ? kHeaderHasHistory : 0) | (h.capacity ? kHeaderHasCapacity : 0));
  put_u64(record_, h.capacity.value_or(0));
  put_string(record_, h.recorder);
  put_u32(record_, static_cast<uint32_t>(h.settings.size()));
  for (const auto& [key, value] : h.settings) {
    put_string(record_, key);
    put_string(record_, value);
  }
  end_record(record_);
  record_.insert(0, file_header);
  emit();
  flush();
}

void HbtWriter::device(int number, bool has_segment_picture) {
  begin(HbtRecord::kDevice, number);
  put_u16(record_, static_cast<uint16_t>(number));
  put_u16(record_, has_segment_picture ? kDeviceHasSegmentPicture : 0);
  end_record(record_);
  emit();
}

void HbtWriter::live_block(int device, const BlockInfo& b) {
  begin(HbtRecord::kLiveBlock, device);
  put_u16(record_, static_cast<uint16_t>(device));
  put_u8(record_, static_cast<uint8_t>(b.state));
  put_u8(record_, 0);
  put_u32(record_, b.id);
  put_u64(record_, b.addr);
  put_u64(record_, b.size);
  put_u64(record_, b.requested);
  put_u64(record_, b.stream);
  end_record(record_);
  emit();
}

void HbtWriter::segment(int device, SegmentWhen when, const SegmentInfo& s) {
  begin(HbtRecord::kSegment, device);
  put_u16(record_, static_cast<uint16_t>(device));
  put_u8(record_, static_cast<uint8_t>(when));
  put_u8(record_, static_cast<uint8_t>((s.small_pool ? kSegmentSmallPool : 0) |
                                       (s.expandable ? kSegmentExpandable : 0)));
  put_u32(record_, static_cast<uint32_t>(s.blocks.size()));
  put_u64(record_, s.addr);
  put_u64(record_, s.size);
  put_u64(record_, s.stream);
  for (const BlockInfo& b : s.blocks) put_block(record_, b);
  end_record(record_);
  emit();
}

void HbtWriter::event(int device, const Event& e) {
  begin(HbtRecord::kEvent, device);
  put_u8(record_, static_cast<uint8_t>(e.action));
  put_u8(record_, 0);
  put_u16(record_, static_cast<uint16_t>(device));
  put_u32(record_, is_block_action(e.action) ? e.id : kNoBlock);
  put_u64(record_, e.size);
  put_u64(record_, e.addr);
  put_u64(record_, e.stream);
  put_u64(record_, static_cast<uint64_t>(e.time_us));
  end_record(record_);
  emit();
}

void HbtWriter::frame(const Frame& f) {
  begin(HbtRecord::kFrame, 0);
  put_string(record_, f.filename);
  put_string(record_, f.name);
  put_u64(record_, static_cast<uint64_t>(f.line));
  end_record(record_);
  emit();
}

void HbtWriter::stack(const std::vector<uint32_t>& frames) {
  begin(HbtRecord::kStack, 0);
  put_u32(record_, static_cast<uint32_t>(frames.size()));
  for (uint32_t f : frames) put_u32(record_, f);
  end_record(record_);
  emit();
}

void HbtWriter::block_stack(int device, uint32_t block, uint32_t stack) {
  begin(HbtRecord::kBlockStack, device);
  put_u16(record_, static_cast<uint16_t>(device));
  put_u16(record_, 0);
  put_u32(record_, block);
  put_u32(record_, stack);
  end_record(record_);
  emit();
}

void HbtWriter::annotation(const Annotation& a) {
  begin(HbtRecord::kAnnotation, a.device);
  put_u16(record_, static_cast<uint16_t>(a.device));
  put_u16(record_, 0);
  put_u64(record_, static_cast<uint64_t>(a.time_us));
  put_u32(record_, static_cast<uint32_t>(a.fields.size()));
  for (const auto& [key, value] : a.fields) {
    put_string(record_, key);
    put_string(record_, value);
  }
  end_record(record_);
  emit();
}

void HbtWriter::user_metadata(int device, const std::string& text) {
  begin(HbtRecord::kUserMetadata, device);
  put_u16(record_, static_cast<uint16_t>(device));
  put_u16(record_, 0);
  put_string(record_, text);
  end_record(record_);
  emit();
}

void HbtWriter::finish() {
  begin(HbtRecord::kEnd, 0);
  put_u64(record_, records_);
  end_record(record_);
  emit();
  finished_ = true;
  flush();
}

void write_hbt(const Trace& trace, HbtWriter& writer) {
  writer.header({trace.recorder, trace.capacity, trace.has_history, trace.settings});
  for (const Frame& f : trace.frames) writer.frame(f);
  for (const std::vector<uint32_t>& s : trace.stacks) writer.stack(s);
  for (const DeviceTrace& d : trace.devices) {
    writer.device(d.device, d.has_segment_picture);
    for (const BlockInfo& b : d.live_at_start) writer.live_block(d.device, b);
    for (const SegmentInfo& s : d.segments_at_start) writer.segment(d.device, SegmentWhen::kAtStart, s);
    auto change = d.user_metadata.begin();
    for (uint64_t i = 0; i < d.events.size(); ++i) {
      for (; change != d.user_metadata.end() && change->event <= i; ++change) writer.user_metadata(d.device, change->text);
      writer.event(d.device, d.events[i]);
    }
    for (const SegmentInfo& s : d.segments_at_end) writer.segment(d.device, SegmentWhen::kAtEnd, s);
    for (uint32_t id = 0; id < d.block_stacks.size(); ++id)
      if (d.block_stacks[id] != kNoStack) writer.block_stack(d.device, id, d.block_stacks[id]);
  }
  for (const Annotation& a : trace.annotations) writer.annotation(a);
  writer.finish();
}

std::string write_hbt(const Trace& trace) {
  std::string out;
  HbtWriter writer(out);
  write_hbt(trace, writer);
  return out;
}

void write_hbt_file(const Trace& trace, const std::string& path) {
  write_whole_file(path, write_hbt(trace));
}

}  // namespace hbmalloc::trace

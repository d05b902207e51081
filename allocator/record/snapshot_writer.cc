#include "record/snapshot_writer.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "hbmalloc/error.hpp"
#include "record/pickle_writer.h"
#include "record/segment_ranges.h"

namespace hbmalloc::trace {
namespace {

[[noreturn]] void fail(const Trace& t, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, t.source + ": cannot write a PyTorch snapshot: " + what);
}

const char* state_name(BlockState s) {
  switch (s) {
    case BlockState::kActiveAllocated: return "active_allocated";
    case BlockState::kActivePendingFree: return "active_pending_free";
    case BlockState::kInactive: return "inactive";
  }
  return "inactive";
}

// Setting values nest a level or two; the cap keeps a hostile one off the stack.
void write_json(PickleWriter& w, const nlohmann::ordered_json& j, int depth = 0) {
  if (depth > 64) throw Error(ErrorCode::kInvalidArgument, "allocator setting nested deeper than 64 levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: w.none(); break;
    case nlohmann::ordered_json::value_t::boolean: w.boolean(j.get<bool>()); break;
    case nlohmann::ordered_json::value_t::number_integer: w.integer(j.get<int64_t>()); break;
    case nlohmann::ordered_json::value_t::number_unsigned: w.uinteger(j.get<uint64_t>()); break;
    case nlohmann::ordered_json::value_t::number_float: w.floating(j.get<double>()); break;
    case nlohmann::ordered_json::value_t::string: w.str(j.get_ref<const std::string&>()); break;
    case nlohmann::ordered_json::value_t::object:
      w.begin_dict();
      for (const auto& [k, v] : j.items()) {
        w.str(k);
        write_json(w, v, depth + 1);
      }
      w.end();
      break;
    default:  // array (binary and discarded do not come out of parse)
      w.begin_list();
      for (const auto& v : j) write_json(w, v, depth + 1);
      w.end();
      break;
  }
}

// The reader's setting text back to a Python value: True/False/None,
// numbers, JSON containers, anything else a str.
void write_setting(PickleWriter& w, const std::string& text) {
  // ordered_json keeps keys in the order the reader wrote them.
  if (text == "True" || text == "False") return w.boolean(text == "True");
  if (text == "None") return w.none();
  const char* end = text.data() + text.size();
  int64_t i = 0;
  if (!text.empty()) {
    if (auto [p, ec] = std::from_chars(text.data(), end, i); ec == std::errc() && p == end) return w.integer(i);
    double f = 0;
    if (auto [p, ec] = std::from_chars(text.data(), end, f); ec == std::errc() && p == end) return w.floating(f);
    if (text.front() == '{' || text.front() == '[') {
      const nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
      if (!j.is_discarded()) return write_json(w, j);
    }
  }
  w.str(text);
}

// The blocks live at the end of `d`, from live_at_start and the alloc/free events.
std::vector<BlockInfo> live_at_end(const Trace& t, const DeviceTrace& d) {
  std::vector<BlockInfo> blocks(d.block_count);
  std::vector<bool> live(d.block_count, false);
  for (const BlockInfo& b : d.live_at_start) {
    if (b.id >= d.block_count) fail(t, "a block live at start has id " + std::to_string(b.id) + " >= block_count");
    blocks[b.id] = b;
    live[b.id] = true;
  }
  for (const Event& e : d.events) {
    if (e.action != Action::kAlloc && e.action != Action::kFree) continue;
    if (e.id >= d.block_count) fail(t, "an event names block " + std::to_string(e.id) + " >= block_count");
    if (e.action == Action::kAlloc) {
      blocks[e.id] = BlockInfo{e.id, e.addr, 0, e.size, e.stream, BlockState::kActiveAllocated};
      live[e.id] = true;
    } else {
      live[e.id] = false;
    }
  }
  std::vector<BlockInfo> out;
  for (uint32_t id = 0; id < d.block_count; ++id)
    if (live[id]) out.push_back(blocks[id]);
  std::sort(out.begin(), out.end(), [](const BlockInfo& a, const BlockInfo& b) { return a.addr < b.addr; });
  return out;
}

// The final picture of a device that has none: segments walked forwards,
// live blocks placed in them, gaps as inactive blocks so blocks tile segments.
std::vector<SegmentInfo> derive_end_picture(const Trace& t, const DeviceTrace& d) {
  SegmentRanges ranges;
  for (const SegmentInfo& s : d.segments_at_start) ranges.add(s.addr, {s.size, s.stream, s.small_pool, s.expandable});
  for (const Event& e : d.events) {
    const SegmentRanges::Extent fresh{e.size, e.stream, e.size <= kSmallPoolSegment, e.action == Action::kSegmentMap};
    bool ok = true;
    switch (e.action) {
      case Action::kSegmentAlloc: ok = ranges.add(e.addr, fresh); break;
      case Action::kSegmentFree: ok = ranges.remove(e.addr, e.size); break;
      case Action::kSegmentMap: ok = ranges.map(e.addr, e.size, fresh); break;
      case Action::kSegmentUnmap: ok = ranges.unmap(e.addr, e.size); break;
      default: break;
    }
    if (!ok) fail(t, std::string(action_name(e.action)) + " at " + std::to_string(e.addr) + " does not fit the segments");
  }
  std::vector<SegmentInfo> segs = ranges.segments();
  const size_t walked = segs.size();  // in address order; blocks' own segments come after
  for (BlockInfo b : live_at_end(t, d)) {
    if (b.size == 0) b.size = b.requested;
    auto holder = std::upper_bound(segs.begin(), segs.begin() + static_cast<ptrdiff_t>(walked), b.addr,
                                   [](uint64_t addr, const SegmentInfo& s) { return addr < s.addr; });
    if (holder != segs.begin()) --holder;
    const bool held = holder != segs.begin() + static_cast<ptrdiff_t>(walked) && b.addr >= holder->addr &&
                      b.addr - holder->addr < holder->size && b.size <= holder->size - (b.addr - holder->addr);
    if (!held) {
      SegmentInfo own;
      own.addr = b.addr;
      own.size = b.size;
      own.stream = b.stream;
      own.small_pool = b.size <= kSmallPoolSegment;
      segs.push_back(std::move(own));
      holder = segs.end() - 1;
    }
    holder->blocks.push_back(b);
  }
  for (SegmentInfo& s : segs) {
    std::vector<BlockInfo> tiled;
    uint64_t at = s.addr;
    for (const BlockInfo& b : s.blocks) {  // already in address order
      if (b.addr < at) fail(t, "live blocks overlap at " + std::to_string(b.addr));
      if (b.addr > at) tiled.push_back(BlockInfo{kNoBlock, at, b.addr - at, 0, s.stream, BlockState::kInactive});
      tiled.push_back(b);
      at = b.addr + b.size;
    }
    if (at < s.addr + s.size) tiled.push_back(BlockInfo{kNoBlock, at, s.addr + s.size - at, 0, s.stream, BlockState::kInactive});
    s.blocks = std::move(tiled);
  }
  std::sort(segs.begin(), segs.end(), [](const SegmentInfo& a, const SegmentInfo& b) { return a.addr < b.addr; });
  return segs;
}

// A stack as PyTorch's `frames`: innermost first, one dict per frame, each
// distinct frame written once and referenced after (as PyTorch's pickles do).
struct FrameWriter {
  const Trace& trace;
  std::vector<uint32_t> memo;  // by frame id: its dict's memo index (UINT32_MAX: not written yet)

  explicit FrameWriter(const Trace& t) : trace(t), memo(t.frames.size(), UINT32_MAX) {}
  void write(PickleWriter& w, uint32_t stack) {
    w.begin_list();
    if (stack < trace.stacks.size())
      for (uint32_t f : trace.stacks[stack]) {
        if (memo[f] != UINT32_MAX) {
          w.memo_get(memo[f]);
          continue;
        }
        const Frame& frame = trace.frames[f];
        memo[f] = w.begin_memoized_dict();
        w.str("name"); w.str(frame.name);
        w.str("filename"); w.str(frame.filename);
        w.str("line"); w.integer(frame.line);
        w.end();
      }
    w.end();
  }
};

void write_segment(PickleWriter& w, FrameWriter& frames, const DeviceTrace& d, const SegmentInfo& s) {
  const int device = d.device;
  uint64_t allocated = 0, active = 0, requested = 0;
  for (const BlockInfo& b : s.blocks) {
    if (b.state == BlockState::kInactive) continue;
    if (b.state == BlockState::kActiveAllocated) allocated += b.size;
    active += b.size;
    requested += b.requested;
  }
  w.begin_dict();
  w.str("device"); w.integer(device);
  w.str("address"); w.uinteger(s.addr);
  w.str("total_size"); w.uinteger(s.size);
  w.str("allocated_size"); w.uinteger(allocated);
  w.str("active_size"); w.uinteger(active);
  w.str("requested_size"); w.uinteger(requested);
  w.str("stream"); w.uinteger(s.stream);
  w.str("segment_type"); w.str(s.small_pool ? "small" : "large");
  w.str("segment_pool_id"); w.begin_tuple(); w.integer(0); w.integer(0); w.end();
  w.str("is_expandable"); w.boolean(s.expandable);
  w.str("frames"); w.begin_list(); w.end();
  w.str("blocks");
  w.begin_list();
  for (const BlockInfo& b : s.blocks) {
    w.begin_dict();
    w.str("address"); w.uinteger(b.addr);
    w.str("size"); w.uinteger(b.size);
    w.str("requested_size"); w.uinteger(b.requested);
    w.str("state"); w.str(state_name(b.state));
    w.str("frames");
    frames.write(w, stack_of(d, b));
    w.end();
  }
  w.end();
  w.end();
}

void write_events(PickleWriter& w, FrameWriter& frames, const DeviceTrace& d) {
  // Frees carry the block's requested bytes, as PyTorch records them.
  std::vector<uint64_t> requested(d.block_count, 0);
  for (const BlockInfo& b : d.live_at_start)
    if (b.id < requested.size()) requested[b.id] = b.requested;
  auto change = d.user_metadata.begin();
  std::string_view metadata;  // what the entries carry now
  w.begin_list();
  for (uint64_t i = 0; i < d.events.size(); ++i) {
    const Event& e = d.events[i];
    for (; change != d.user_metadata.end() && change->event <= i; ++change) metadata = change->text;
    uint64_t size = e.size;
    if (e.id < requested.size()) {
      if (e.action == Action::kAlloc) requested[e.id] = e.size;
      if (e.action == Action::kFree || e.action == Action::kFreeRequested) size = requested[e.id];
    }
    w.begin_dict();
    w.str("action"); w.str(action_name(e.action));
    w.str(e.action == Action::kOom ? "device_free" : "addr"); w.uinteger(e.addr);
    w.str("size"); w.uinteger(size);
    w.str("stream"); w.uinteger(e.stream);
    w.str("time_us"); w.integer(e.time_us);
    w.str("frames");
    frames.write(w, e.action == Action::kAlloc && e.id < d.block_stacks.size() ? d.block_stacks[e.id] : kNoStack);
    if (!metadata.empty()) {
      w.str("user_metadata"); w.str(metadata);
    }
    w.end();
  }
  w.end();
}

void write_annotations(PickleWriter& w, const Trace& trace) {
  w.begin_list();
  for (const Annotation& a : trace.annotations) {
    w.begin_dict();
    for (const auto& [key, value] : a.fields) {
      w.str(key); w.str(value);
    }
    w.str("device"); w.integer(a.device);
    w.str("time_us"); w.integer(a.time_us);
    w.end();
  }
  w.end();
}

}  // namespace

std::string write_pytorch_snapshot(const Trace& trace) {
  // PyTorch records no block of 0 bytes, and a snapshot has no place for one
  // (it has no address): refused rather than written unreadable.
  for (const DeviceTrace& d : trace.devices)
    for (const Event& e : d.events)
      if (e.action == Action::kAlloc && e.size == 0)
        fail(trace, "device " + std::to_string(d.device) + " block " + std::to_string(e.id) +
                        " is an allocation of 0 bytes, which PyTorch never records");
  PickleWriter w;
  w.begin_dict();

  FrameWriter frames(trace);
  w.str("segments");
  w.begin_list();
  for (const DeviceTrace& d : trace.devices) {
    // A picture with no end (a trace cut short) would not read back where
    // segments or blocks remain: the end is derived as for a trace with none.
    if (d.has_segment_picture && !d.segments_at_end.empty()) {
      for (const SegmentInfo& s : d.segments_at_end) write_segment(w, frames, d, s);
    } else {
      for (const SegmentInfo& s : derive_end_picture(trace, d)) write_segment(w, frames, d, s);
    }
  }
  w.end();

  w.str("device_traces");
  w.begin_list();
  int next = 0;
  for (const DeviceTrace& d : trace.devices) {  // sorted by device number
    if (d.device < next) fail(trace, "devices are not sorted by number");
    for (; next < d.device; ++next) {
      w.begin_list();
      w.end();
    }
    write_events(w, frames, d);
    next = d.device + 1;
  }
  w.end();

  if (!trace.annotations.empty()) {
    w.str("external_annotations");
    write_annotations(w, trace);
  }

  w.str("allocator_settings");
  w.begin_dict();
  for (const auto& [key, value] : trace.settings) {
    w.str(key);
    write_setting(w, value);
  }
  w.end();

  w.end();
  return w.finish();
}

}  // namespace hbmalloc::trace

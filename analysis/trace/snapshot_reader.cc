// PyTorch memory snapshot (torch.cuda.memory._dump_snapshot) into a Trace.
// The pickle is parsed by the strict data-only reader, then only the known
// paths of the snapshot schema are walked (so memo cycles cannot hang us).
// The picture at trace start is reconstructed as ../shared/traces/README.md
// defines it: the final picture with the trace undone backwards.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <optional>
#include <unordered_map>

#include "core/helpers.h"
#include "hbmalloc/error.hpp"
#include "trace/pickle_reader.h"
#include "trace/read_trace.h"
#include "record/segment_ranges.h"

namespace hbmalloc::trace {
namespace {

constexpr int kMaxDevice = 1 << 16;
constexpr size_t kMaxSettingText = 4096;
constexpr size_t kMaxSettingValues = 4096;
constexpr int kMaxSettingDepth = 16;

// Python's repr of a float for the common cases: shortest digits, and a
// trailing ".0" for integral values.
std::string float_text(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, ec == std::errc() ? end : buf);
  if (s.find_first_not_of("-0123456789") == std::string::npos) s += ".0";
  return s;
}

void append_json_string(std::string_view s, std::string& out) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

std::string setting_text(const PickleTree& t, PickleNode n);

// A nested setting (e.g. roundup_power2_divisions) as compact JSON. Depth
// and the values visited (keys included) are capped: a memo cycle renders as
// "..." instead of looping or blowing up.
void append_json(const PickleTree& t, PickleNode n, int depth, size_t& visited, std::string& out) {
  if (++visited > kMaxSettingValues || out.size() > kMaxSettingText || depth > kMaxSettingDepth) {
    out += "\"...\"";
    return;
  }
  switch (t.kind(n)) {
    case PickleKind::kNone: out += "null"; return;
    case PickleKind::kBool: out += t.as_bool(n) ? "true" : "false"; return;
    case PickleKind::kInt: out += t.is_big_uint(n) ? std::to_string(t.as_uint(n)) : std::to_string(t.as_int(n)); return;
    case PickleKind::kFloat: out += float_text(t.as_float(n)); return;
    case PickleKind::kStr:
    case PickleKind::kBytes: append_json_string(t.as_str(n), out); return;
    case PickleKind::kDict: {
      out += '{';
      bool first = true;
      t.for_each_pair(n, [&](PickleNode key, PickleNode value) {
        if (!first) out += ',';
        first = false;
        if (t.is_str(key)) {
          append_json_string(t.as_str(key), out);
        } else if (!t.is_container(key)) {
          append_json_string(setting_text(t, key), out);
        } else {  // a tuple key: named, not rendered (escaping nested keys grows exponentially)
          append_json_string(std::string("<") + pickle_kind_name(t.kind(key)) + ">", out);
        }
        out += ':';
        append_json(t, value, depth + 1, visited, out);
      });
      out += '}';
      return;
    }
    default: {  // tuple, list, set, frozenset
      out += '[';
      bool first = true;
      for (PickleNode item : t.items(n)) {
        if (!first) out += ',';
        first = false;
        append_json(t, item, depth + 1, visited, out);
      }
      out += ']';
      return;
    }
  }
}

// A top-level setting: scalars as Python prints them (PYTORCH_CUDA_ALLOC_CONF
// spells booleans True/False), containers as JSON.
std::string setting_text(const PickleTree& t, PickleNode n) {
  switch (t.kind(n)) {
    case PickleKind::kNone: return "None";
    case PickleKind::kBool: return t.as_bool(n) ? "True" : "False";
    case PickleKind::kInt: return t.is_big_uint(n) ? std::to_string(t.as_uint(n)) : std::to_string(t.as_int(n));
    case PickleKind::kFloat: return float_text(t.as_float(n));
    case PickleKind::kStr:
    case PickleKind::kBytes: return std::string(t.as_str(n));
    default: {
      std::string out;
      size_t visited = 0;
      append_json(t, n, 0, visited, out);
      return out;
    }
  }
}

// A block of the final picture, keyed by address while undoing the trace.
struct LiveBlock {
  uint64_t size = 0;
  uint64_t requested = 0;
  uint64_t stream = 0;
  BlockState state = BlockState::kActiveAllocated;
};


class SnapshotConverter {
 public:
  // Reading may visit `input_bytes` times kWorkPerByte items (plus a floor):
  // a pickle refers to one object as often as it likes (the memo), so a small
  // file can name a list of 100,000 blocks 100,000 times.
  SnapshotConverter(const PickleTree& t, const std::string& source, size_t input_bytes)
      : t_(t), source_(source), work_left_(uint64_t(input_bytes) * kWorkPerByte + kWorkFloor) {}

  Trace convert() {
    Trace trace;
    trace.source = source_;
    trace.format = "pytorch-snapshot";
    trace.recorder = "pytorch";

    std::optional<PickleNode> segments;
    std::optional<PickleNode> device_traces;
    const PickleNode root = t_.root();
    if (t_.kind(root) == PickleKind::kDict) {
      segments = t_.find(root, "segments");
      device_traces = t_.find(root, "device_traces");
      if (auto settings = t_.find(root, "allocator_settings")) read_settings(*settings, trace);
      if (auto annotations = t_.find(root, "external_annotations")) read_annotations(*annotations, trace);
    } else if (t_.kind(root) == PickleKind::kList && looks_like_segment_list(root)) {
      segments = root;  // older torch pickled the list of segments alone
    }
    if (!segments || t_.kind(*segments) != PickleKind::kList)
      fail("not a PyTorch memory snapshot (no 'segments' list)");

    std::map<int, DeviceTrace> devices;
    read_segments(*segments, devices);
    std::map<int, std::vector<uint32_t>> alloc_stacks;  // per device, per event: the alloc's stack
    if (device_traces) {
      if (t_.kind(*device_traces) != PickleKind::kList) fail("'device_traces' is not a list");
      if (t_.size(*device_traces) > static_cast<size_t>(kMaxDevice)) fail("more than 65536 device traces");
      int number = 0;
      for (PickleNode events : t_.items(*device_traces)) {
        DeviceTrace& d = devices[number];
        read_events(events, number, d.events, alloc_stacks[number], d.user_metadata);
        for (const Event& e : d.events) trace.has_history |= e.action == Action::kAlloc;
        ++number;
      }
    }
    for (auto& [number, d] : devices) {
      d.device = number;
      d.has_segment_picture = true;
      reconstruct_blocks(d);
      reconstruct_segments(d);
      infer_start_sizes(d);
      if (!stacks_.empty()) attach_stacks(d, alloc_stacks[number]);
      trace.devices.push_back(std::move(d));
    }
    trace.frames = std::move(frames_);
    trace.stacks = std::move(stacks_);
    return trace;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kInvalidArgument, source_ + ": " + what);
  }

  std::string_view key_of(PickleNode key) const { return t_.is_str(key) ? t_.as_str(key) : std::string_view(); }

  bool looks_like_segment_list(PickleNode list) const {
    if (t_.size(list) == 0) return true;
    const PickleNode first = *t_.items(list).begin();
    return t_.kind(first) == PickleKind::kDict && t_.find(first, "total_size").has_value();
  }

  int64_t int_of(PickleNode n, const char* key, const std::string& where) const {
    if (!t_.is_int(n)) fail(where + ": '" + key + "' is a " + pickle_kind_name(t_.kind(n)) + ", not an int");
    if (t_.is_big_uint(n)) fail(where + ": '" + key + "' is out of range (" + std::to_string(t_.as_uint(n)) + ")");
    return t_.as_int(n);
  }
  uint64_t count_of(PickleNode n, const char* key, const std::string& where) const {
    if (t_.is_big_uint(n)) return t_.as_uint(n);
    const int64_t v = int_of(n, key, where);
    if (v < 0) fail(where + ": '" + key + "' is negative (" + std::to_string(v) + ")");
    return static_cast<uint64_t>(v);
  }
  std::string_view str_of(PickleNode n, const char* key, const std::string& where) const {
    if (!t_.is_str(n)) fail(where + ": '" + key + "' is a " + pickle_kind_name(t_.kind(n)) + ", not a str");
    return t_.as_str(n);
  }
  void require_dict(PickleNode n, const std::string& where) const {
    if (t_.kind(n) != PickleKind::kDict) fail(where + " is a " + std::string(pickle_kind_name(t_.kind(n))) + ", not a dict");
  }
  void require_list(PickleNode n, const std::string& where) const {
    const PickleKind k = t_.kind(n);
    if (k != PickleKind::kList && k != PickleKind::kTuple)
      fail(where + " is a " + std::string(pickle_kind_name(k)) + ", not a list");
  }

  void read_settings(PickleNode settings, Trace& trace) {
    if (t_.kind(settings) != PickleKind::kDict) return;  // None in some versions
    charge(t_.size(settings));
    t_.for_each_pair(settings, [&](PickleNode key, PickleNode value) {
      trace.settings.emplace_back(setting_text(t_, key), setting_text(t_, value));
      charge(trace.settings.back().first.size() + trace.settings.back().second.size());
    });
  }

  // external_annotations: [{"stage": .., "name": .., "device": int, "time_us": int}, ...];
  // None in snapshots taken without them.
  void read_annotations(PickleNode list, Trace& trace) {
    if (t_.kind(list) == PickleKind::kNone) return;
    require_list(list, "'external_annotations'");
    charge(t_.size(list));
    size_t index = 0;
    for (PickleNode entry : t_.items(list)) {
      const std::string where = "external_annotations[" + std::to_string(index++) + "]";
      require_dict(entry, where);
      charge(t_.size(entry));
      Annotation a;
      t_.for_each_pair(entry, [&](PickleNode key, PickleNode value) {
        const std::string_view k = str_of(key, "key", where);
        if (k == "device") {
          const int64_t device = int_of(value, "device", where);
          if (device < 0 || device >= kMaxDevice) fail(where + ": 'device' " + std::to_string(device) + " is out of range");
          a.device = int(device);
        } else if (k == "time_us") {
          a.time_us = int_of(value, "time_us", where);
        } else if (t_.is_str(value)) {
          a.fields.emplace_back(k, t_.as_str(value));
        } else if (t_.is_int(value) && !t_.is_big_uint(value)) {
          a.fields.emplace_back(k, std::to_string(t_.as_int(value)));
        } else {
          fail(where + ": '" + std::string(k) + "' is a " + pickle_kind_name(t_.kind(value)) + ", not a str");
        }
        charge(a.fields.empty() ? 1 : a.fields.back().first.size() + a.fields.back().second.size());
      });
      trace.annotations.push_back(std::move(a));
    }
  }

  void read_segments(PickleNode segments, std::map<int, DeviceTrace>& devices) {
    size_t index = 0;
    charge(t_.size(segments));
    for (PickleNode seg : t_.items(segments)) {
      const std::string where = "segments[" + std::to_string(index++) + "]";
      require_dict(seg, where);
      charge(t_.size(seg));
      int device = 0;
      SegmentInfo s;
      std::optional<uint64_t> addr, total;
      std::optional<PickleNode> blocks;
      std::optional<std::string_view> type;
      t_.for_each_pair(seg, [&](PickleNode key, PickleNode item) {
        const std::string_view k = key_of(key);
        if (k == "device") {
          const int64_t v = int_of(item, "device", where);
          if (v < 0 || v >= kMaxDevice) fail(where + ": device " + std::to_string(v) + " out of range");
          device = static_cast<int>(v);
        } else if (k == "address") {
          addr = count_of(item, "address", where);
        } else if (k == "total_size") {
          total = count_of(item, "total_size", where);
        } else if (k == "stream") {
          s.stream = static_cast<uint64_t>(int_of(item, "stream", where));
        } else if (k == "segment_type") {
          type = str_of(item, "segment_type", where);
        } else if (k == "is_expandable") {
          s.expandable = int_of(item, "is_expandable", where) != 0;
        } else if (k == "blocks") {
          blocks = item;
        }
      });
      if (!addr) fail(where + ": no 'address'");
      if (!total) fail(where + ": no 'total_size'");
      if (*total > UINT64_MAX - *addr) fail(where + ": address + total_size overflows");
      s.addr = *addr;
      s.size = *total;
      s.small_pool = type ? *type == "small" : s.size <= kSmallPoolSegment;
      if (blocks) read_blocks(*blocks, where, s);
      devices[device].segments_at_end.push_back(std::move(s));
    }
  }

  // ---- stacks: each distinct frame and stack once ----

  // The stack a 'frames' list names (innermost first); `where` (a callable
  // giving the entry's path) is built only for an error.
  template <typename Where>
  uint32_t stack_of(PickleNode list, const Where& where) {
    if (t_.kind(list) != PickleKind::kList && t_.kind(list) != PickleKind::kTuple) require_list(list, where() + ": 'frames'");
    charge(t_.size(list));
    scratch_.clear();
    size_t i = 0;
    if (t_.size(list) == 0) return kNoStack;  // PyTorch's for a block allocated before its history began
    if (frame_of_node_.empty()) frame_of_node_.assign(t_.node_count(), kNoStack);
    if (const uint32_t known = frame_of_node_[list]; known != kNoStack) return known;  // a list seen before
    for (PickleNode f : t_.items(list)) {
      const uint32_t known = frame_of_node_[f];
      scratch_.push_back(known != kNoStack ? known : new_frame(f, where() + ".frames[" + std::to_string(i) + "]"));
      ++i;
    }
    // Consecutive allocations mostly come from the same code.
    if (last_stack_ != kNoStack && stacks_[last_stack_] == scratch_) return frame_of_node_[list] = last_stack_;
    auto [it, added] = stack_ids_.try_emplace(scratch_, uint32_t(stacks_.size()));
    if (added) {
      if (stacks_.size() >= kNoStack - 1) fail(where() + ": more than 2^32 distinct stacks");
      stacks_.push_back(scratch_);
    }
    return frame_of_node_[list] = last_stack_ = it->second;
  }
  // A frame dict not seen before (snapshots share them among stacks).
  uint32_t new_frame(PickleNode f, const std::string& where) {
    require_dict(f, where);
    charge(t_.size(f));
    Frame frame;
    t_.for_each_pair(f, [&](PickleNode key, PickleNode item) {
      const std::string_view k = key_of(key);
      if (k == "filename") frame.filename = str_of(item, "filename", where);
      else if (k == "name") frame.name = str_of(item, "name", where);
      else if (k == "line") frame.line = t_.is_big_uint(item) ? -1 : int_of(item, "line", where);  // C++ frames: 2^64-1
    });
    charge(frame.filename.size() + frame.name.size());
    std::string key = frame.filename + '\0' + frame.name + '\0' + std::to_string(frame.line);
    auto [it, added] = frame_ids_.try_emplace(std::move(key), uint32_t(frames_.size()));
    if (added) frames_.push_back(std::move(frame));
    frame_of_node_[f] = it->second;
    return it->second;
  }
  // Each block's allocation stack: its alloc event's, or, for a block live
  // since before the trace began, the final picture's.
  void attach_stacks(DeviceTrace& d, const std::vector<uint32_t>& alloc_stacks) const {
    d.block_stacks.assign(d.block_count, kNoStack);
    for (size_t i = 0; i < d.events.size() && i < alloc_stacks.size(); ++i)
      if (d.events[i].action == Action::kAlloc && d.events[i].id != kNoBlock) d.block_stacks[d.events[i].id] = alloc_stacks[i];
    for (const SegmentInfo& s : d.segments_at_end)
      for (const BlockInfo& b : s.blocks)
        if (b.id != kNoBlock && b.stack != kNoStack && d.block_stacks[b.id] == kNoStack) d.block_stacks[b.id] = b.stack;
  }

  void read_blocks(PickleNode blocks, const std::string& seg_where, SegmentInfo& s) {
    require_list(blocks, seg_where + ": 'blocks'");
    charge(t_.size(blocks));
    s.blocks.reserve(t_.size(blocks));
    uint64_t next_addr = s.addr;  // old snapshots give no block address: blocks tile the segment
    size_t index = 0;
    for (PickleNode blk : t_.items(blocks)) {
      const std::string where = seg_where + ".blocks[" + std::to_string(index++) + "]";
      require_dict(blk, where);
      charge(t_.size(blk));
      BlockInfo b;
      b.addr = next_addr;
      b.stream = s.stream;
      std::optional<uint64_t> size, requested;
      std::optional<std::string_view> state;
      t_.for_each_pair(blk, [&](PickleNode key, PickleNode item) {
        const std::string_view k = key_of(key);
        if (k == "address") {
          b.addr = count_of(item, "address", where);
        } else if (k == "size") {
          size = count_of(item, "size", where);
        } else if (k == "requested_size") {
          requested = count_of(item, "requested_size", where);
        } else if (k == "state") {
          state = str_of(item, "state", where);
        } else if (k == "frames") {
          b.stack = stack_of(item, [&] { return where; });
        }
      });
      if (!size) fail(where + ": no 'size'");
      if (!state) fail(where + ": no 'state'");
      if (*state == "active_allocated") {
        b.state = BlockState::kActiveAllocated;
      } else if (*state == "active_pending_free") {
        b.state = BlockState::kActivePendingFree;
      } else if (*state == "inactive") {
        b.state = BlockState::kInactive;
      } else {
        fail(where + ": unknown block state '" + std::string(*state) + "'");
      }
      if (*size > UINT64_MAX - b.addr) fail(where + ": address + size overflows");
      b.size = *size;
      b.requested = requested.value_or(*size);
      next_addr = b.addr + b.size;
      s.blocks.push_back(b);
    }
  }

  // Items (dict pairs, list items, string bytes copied) about to be visited;
  // refuses the file once they pass what its size can hold without sharing.
  void charge(uint64_t items) {
    if (items <= work_left_) {
      work_left_ -= items;
      return;
    }
    fail("refers to the same objects over and over (pickle memo references): reading it would visit more than " +
         std::to_string(kWorkPerByte) + " items per byte of the file; refused");
  }

  Action action_of(PickleNode n, const std::string_view name) {
    // Pickles share the action strings, so a few nodes name them all; a
    // pickle that does not (Pickler.fast) must not make the cache grow.
    for (const auto& [node, action] : action_cache_)
      if (node == n) return action;
    // Actions a newer PyTorch may add carry no allocation: keep them as markers.
    const Action a = action_from_name(name).value_or(Action::kMarker);
    if (action_cache_.size() < kActionCacheSize) action_cache_.emplace_back(n, a);
    return a;
  }

  void read_events(PickleNode list, int device, std::vector<Event>& out, std::vector<uint32_t>& alloc_stacks,
                   std::vector<MetadataChange>& metadata) {
    std::string_view current_metadata;
    const std::string list_where = "device_traces[" + std::to_string(device) + "]";
    require_list(list, list_where);
    charge(t_.size(list));
    out.reserve(t_.size(list));
    size_t index = 0;
    for (PickleNode entry : t_.items(list)) {
      auto where = [&] { return list_where + "[" + std::to_string(index) + "]"; };
      if (t_.kind(entry) != PickleKind::kDict) require_dict(entry, where());
      charge(t_.size(entry));
      Event e;
      std::optional<PickleNode> frames;
      bool have_action = false, have_addr = false, have_size = false, have_free = false;
      uint64_t device_free = 0;
      std::string_view user_metadata;  // absent: none
      t_.for_each_pair(entry, [&](PickleNode key, PickleNode item) {
        const std::string_view k = key_of(key);
        switch (k.size()) {
          case 4:
            if (k == "addr") {
              e.addr = t_.is_int(item) && t_.as_int(item) >= 0 ? static_cast<uint64_t>(t_.as_int(item))
                                                               : count_of(item, "addr", where());
              have_addr = true;
            } else if (k == "size") {
              e.size = t_.is_int(item) && t_.as_int(item) >= 0 ? static_cast<uint64_t>(t_.as_int(item))
                                                               : count_of(item, "size", where());
              have_size = true;
            }
            break;
          case 6:
            if (k == "action") {
              if (!t_.is_str(item)) str_of(item, "action", where());
              e.action = action_of(item, t_.as_str(item));
              have_action = true;
            } else if (k == "stream") {
              e.stream = static_cast<uint64_t>(int_of(item, "stream", where()));
            } else if (k == "frames") {
              frames = item;
            }
            break;
          case 7:
            if (k == "time_us") e.time_us = int_of(item, "time_us", where());
            break;
          case 11:
            if (k == "device_free") {
              device_free = count_of(item, "device_free", where());
              have_free = true;
            }
            break;
          case 13:
            if (k == "user_metadata") user_metadata = str_of(item, "user_metadata", where());
            break;
          default:
            break;
        }
      });
      if (!have_action) fail(where() + ": no 'action'");
      switch (e.action) {
        case Action::kOom:
          if (have_free) e.addr = device_free;  // PyTorch records the device's free bytes here
          if (!have_size) fail(where() + ": no 'size'");
          break;
        case Action::kAlloc:
        case Action::kFreeRequested:
        case Action::kFree:
        case Action::kSegmentAlloc:
        case Action::kSegmentFree:
        case Action::kSegmentMap:
        case Action::kSegmentUnmap:
          if (!have_addr) fail(where() + ": no 'addr'");
          if (!have_size) fail(where() + ": no 'size'");
          if (e.size > UINT64_MAX - e.addr) fail(where() + ": addr + size overflows");
          break;
        default:
          break;
      }
      // Only where a block was allocated is kept: the sites that hold memory.
      if (e.action == Action::kAlloc && frames) {
        alloc_stacks.resize(out.size() + 1, kNoStack);
        alloc_stacks[out.size()] = stack_of(*frames, where);
      }
      if (user_metadata != current_metadata) {
        metadata.push_back(MetadataChange{out.size(), std::string(user_metadata)});
        current_metadata = user_metadata;
        charge(user_metadata.size());
      }
      out.push_back(e);
      ++index;
    }
  }

  [[noreturn]] void fail_event(const DeviceTrace& d, size_t i, const std::string& what) const {
    const Event& e = d.events[i];
    fail("device " + std::to_string(d.device) + " event " + std::to_string(i) + " (" + action_name(e.action) + " " +
         hex(e.addr) + ", " + std::to_string(e.size) + " bytes): " + what);
  }

  // live_at_start, block ids on every alloc/free, and ids of the final live blocks.
  void reconstruct_blocks(DeviceTrace& d) const {
    std::unordered_map<uint64_t, LiveBlock> live;
    size_t final_live = 0;
    for (const SegmentInfo& s : d.segments_at_end)
      for (const BlockInfo& b : s.blocks)
        if (b.state != BlockState::kInactive) {
          if (!live.emplace(b.addr, LiveBlock{b.size, b.requested, b.stream, b.state}).second)
            fail("device " + std::to_string(d.device) + ": two live blocks at " + hex(b.addr) + " in the final segments");
          ++final_live;
        }
    live.reserve(final_live + d.events.size() / 2);

    // Backwards: an alloc undone removes the block, a free_completed undone
    // restores it (requested = the event's size; its rounded size is unknown).
    for (size_t i = d.events.size(); i-- > 0;) {
      const Event& e = d.events[i];
      if (e.action == Action::kAlloc) {
        live.erase(e.addr);
      } else if (e.action == Action::kFree) {
        live[e.addr] = LiveBlock{0, e.size, e.stream, BlockState::kActiveAllocated};
      }
    }

    d.live_at_start.clear();
    d.live_at_start.reserve(live.size());
    for (const auto& [addr, b] : live) d.live_at_start.push_back(BlockInfo{kNoBlock, addr, b.size, b.requested, b.stream, b.state});
    std::sort(d.live_at_start.begin(), d.live_at_start.end(),
              [](const BlockInfo& a, const BlockInfo& b) { return a.addr < b.addr; });

    // Forwards: dense ids, and every free must find a live block.
    std::unordered_map<uint64_t, uint32_t> by_addr;
    by_addr.reserve(live.size() + d.events.size() / 2);
    enum : uint8_t { kUntouched, kRequestedFirst, kCompletedFirst };
    std::vector<uint8_t> first_free(d.live_at_start.size(), kUntouched);
    for (uint32_t id = 0; id < d.live_at_start.size(); ++id) {
      d.live_at_start[id].id = id;
      by_addr.emplace(d.live_at_start[id].addr, id);
    }
    uint64_t next_id = d.live_at_start.size();
    for (size_t i = 0; i < d.events.size(); ++i) {
      Event& e = d.events[i];
      switch (e.action) {
        case Action::kAlloc: {
          if (next_id >= kNoBlock) fail_event(d, i, "too many blocks");
          auto [it, inserted] = by_addr.emplace(e.addr, static_cast<uint32_t>(next_id));
          if (!inserted) fail_event(d, i, "alloc at an address whose block is still live (a corrupt trace)");
          e.id = static_cast<uint32_t>(next_id++);
          break;
        }
        case Action::kFreeRequested:
        case Action::kFree: {
          auto it = by_addr.find(e.addr);
          if (it == by_addr.end())
            fail_event(d, i, std::string(action_name(e.action)) + " of " + hex(e.addr) +
                                 ", which is not live at that point (a corrupt trace)");
          e.id = it->second;
          if (e.id < first_free.size() && first_free[e.id] == kUntouched)
            first_free[e.id] = e.action == Action::kFree ? kCompletedFirst : kRequestedFirst;
          if (e.action == Action::kFree) by_addr.erase(it);
          break;
        }
        default:
          break;
      }
    }
    d.block_count = static_cast<uint32_t>(next_id);

    // A block whose first free in the trace is free_completed had its
    // free_requested before the trace began: pending at start.
    for (BlockInfo& b : d.live_at_start) {
      if (first_free[b.id] == kCompletedFirst) b.state = BlockState::kActivePendingFree;
      if (first_free[b.id] == kRequestedFirst) b.state = BlockState::kActiveAllocated;
    }

    // The trace must end in the final picture; its live blocks get their ids.
    for (SegmentInfo& s : d.segments_at_end)
      for (BlockInfo& b : s.blocks) {
        if (b.state == BlockState::kInactive) continue;
        auto it = by_addr.find(b.addr);
        if (it == by_addr.end())
          fail("device " + std::to_string(d.device) + ": the final segments hold a live block at " + hex(b.addr) +
               " that the trace frees and never allocates again (a corrupt trace)");
        b.id = it->second;
      }
    if (by_addr.size() != final_live) {
      std::vector<bool> in_final(next_id, false);
      for (const SegmentInfo& s : d.segments_at_end)
        for (const BlockInfo& b : s.blocks)
          if (b.id != kNoBlock) in_final[b.id] = true;
      for (const auto& [addr, id] : by_addr)
        if (!in_final[id])
          fail("device " + std::to_string(d.device) + ": block " + std::to_string(id) + " at " + hex(addr) +
               " is live at the end of the trace but not in the final segments (a corrupt trace)");
    }
  }

  // segments_at_start: the final segments with segment events undone backwards.
  void reconstruct_segments(DeviceTrace& d) const {
    SegmentRanges segs;
    for (const SegmentInfo& s : d.segments_at_end)
      if (!segs.add(s.addr, {s.size, s.stream, s.small_pool, s.expandable}))
        fail("device " + std::to_string(d.device) + ": final segments overlap at " + hex(s.addr));
    for (size_t i = d.events.size(); i-- > 0;) {
      const Event& e = d.events[i];
      const SegmentRanges::Extent restored{e.size, e.stream, e.size <= kSmallPoolSegment, false};
      switch (e.action) {
        case Action::kSegmentAlloc:
          if (!segs.remove(e.addr, e.size)) fail_event(d, i, "no segment of that address and size is held after it");
          break;
        case Action::kSegmentFree:
          if (!segs.add(e.addr, restored)) fail_event(d, i, "it overlaps a segment held after it");
          break;
        case Action::kSegmentMap:
          if (!segs.unmap(e.addr, e.size)) fail_event(d, i, "no segment holds the mapped range after it");
          break;
        case Action::kSegmentUnmap: {
          SegmentRanges::Extent remapped = restored;
          remapped.expandable = true;
          if (!segs.map(e.addr, e.size, remapped)) fail_event(d, i, "the unmapped range overlaps a segment held after it");
          break;
        }
        default:
          break;
      }
    }
    d.segments_at_start = segs.segments();
  }

  // A block live at start that the trace frees has no size in the snapshot
  // (events carry the requested bytes), yet PyTorch's block may be larger: a
  // remainder too small to split stays with it. Free blocks always coalesce,
  // so when the trace allocates at A, the byte before A is in a live block;
  // if the nearest live block below A is such a start block, it ends exactly
  // at A. Not in expandable segments, where unmapped space may lie before A.
  static void infer_start_sizes(DeviceTrace& d) {
    std::vector<const SegmentInfo*> segs;
    for (const SegmentInfo& s : d.segments_at_start) segs.push_back(&s);
    std::sort(segs.begin(), segs.end(), [](const SegmentInfo* a, const SegmentInfo* b) { return a->addr < b->addr; });
    auto segment_of = [&](uint64_t addr) -> const SegmentInfo* {
      auto it = std::upper_bound(segs.begin(), segs.end(), addr, [](uint64_t a, const SegmentInfo* s) { return a < s->addr; });
      if (it == segs.begin()) return nullptr;
      --it;
      return addr < (*it)->addr + (*it)->size ? *it : nullptr;
    };
    const size_t starting = d.live_at_start.size();  // their ids are 0..starting-1, in address order
    std::vector<bool> unknown(starting);
    bool any = false;
    for (const BlockInfo& b : d.live_at_start) any |= unknown[b.id] = b.size == 0;
    if (!any) return;
    std::map<uint64_t, uint32_t> live;  // address -> block id
    for (const BlockInfo& b : d.live_at_start) live.emplace(b.addr, b.id);
    for (const Event& e : d.events) {
      if (e.action == Action::kFree) {
        live.erase(e.addr);
        continue;
      }
      if (e.action != Action::kAlloc) continue;
      if (auto it = live.lower_bound(e.addr); it != live.begin()) {
        const uint32_t id = std::prev(it)->second;
        if (id < starting && unknown[id]) {
          BlockInfo& p = d.live_at_start[id];
          const SegmentInfo* seg = segment_of(p.addr);
          if (seg != nullptr && !seg->expandable && e.addr < seg->addr + seg->size && e.addr - p.addr >= p.requested) {
            p.size = e.addr - p.addr;
            unknown[id] = false;
          }
        }
      }
      live.emplace(e.addr, e.id);
    }
  }

  const PickleTree& t_;
  const std::string& source_;
  static constexpr size_t kActionCacheSize = 32;
  std::vector<std::pair<PickleNode, Action>> action_cache_;
  static constexpr uint64_t kWorkPerByte = 4;
  static constexpr uint64_t kWorkFloor = uint64_t{1} << 20;
  uint64_t work_left_;

  struct StackHash {
    size_t operator()(const std::vector<uint32_t>& v) const {
      uint64_t h = 1469598103934665603ull;
      for (uint32_t x : v) h = (h ^ x) * 1099511628211ull;
      return size_t(h);
    }
  };
  std::vector<Frame> frames_;
  std::vector<std::vector<uint32_t>> stacks_;
  std::vector<uint32_t> scratch_;  // the stack being read
  // By pickle node: a frame dict's frame id, or a frames list's stack id
  // (kNoStack: not seen yet); pickles share both.
  std::vector<uint32_t> frame_of_node_;
  uint32_t last_stack_ = kNoStack;
  std::unordered_map<std::string, uint32_t> frame_ids_;
  std::unordered_map<std::vector<uint32_t>, uint32_t, StackHash> stack_ids_;
};

}  // namespace

Trace read_pytorch_snapshot(std::string_view bytes, const std::string& source) {
  const PickleTree tree = parse_pickle(bytes, source);
  return SnapshotConverter(tree, source, bytes.size()).convert();
}

}  // namespace hbmalloc::trace

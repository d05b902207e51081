#include "trace/jsonl_format.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <map>
#include <optional>

#include "hbmalloc/error.hpp"
#include "record/write_file.h"
#include "trace/json_input.h"
#include "trace/read_trace.h"
#include "trace/text_lines.h"
#include "trace/trace_assembler.h"

namespace hbmalloc::trace {
namespace {

constexpr int64_t kJsonlVersion = 1;

constexpr std::array<std::pair<BlockState, std::string_view>, 3> kStateNames = {{
    {BlockState::kActiveAllocated, "active_allocated"},
    {BlockState::kActivePendingFree, "active_pending_free"},
    {BlockState::kInactive, "inactive"},
}};

std::string_view state_name(BlockState s) {
  for (const auto& [state, name] : kStateNames)
    if (state == s) return name;
  return "inactive";
}

bool is_segment_action(Action a) {
  return a == Action::kSegmentAlloc || a == Action::kSegmentFree || a == Action::kSegmentMap ||
         a == Action::kSegmentUnmap;
}

// The next line that is not blank or a '#' comment; false at the end.
bool next_content(TextLines& lines, std::string_view& line) {
  while (lines.next(line))
    if (!line.empty() && line.front() != '#') return true;
  return false;
}

class JsonlReader {
 public:
  explicit JsonlReader(const std::string& source) : source_(source) {}

  Trace read(std::string_view text) {
    TextLines lines(text);
    std::string_view line;
    bool seen_header = false;
    while (next_content(lines, line)) {
      where_ = source_ + ":" + std::to_string(lines.number());
      Json object = parse_json(line, where_);
      if (!object.is_object()) fail("each line must be a JSON object");
      if (!seen_header) {
        header(object);
        seen_header = true;
      } else {
        line_object(object);
      }
    }
    if (!seen_header)
      throw Error(ErrorCode::kInvalidArgument, source_ + ": no JSON lines header line");
    return finish();
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(ErrorCode::kInvalidArgument, where_ + ": " + problem);
  }

  // Misspelt fields would otherwise be silently read as 0.
  void allow_only(const Json& object, std::initializer_list<std::string_view> keys) const {
    for (const auto& [key, value] : object.items())
      if (std::find(keys.begin(), keys.end(), key) == keys.end())
        fail("unknown field \"" + printable(key) + "\"");
  }

  uint64_t u64(const Json& o, std::string_view key) const { return json_u64(o, key, where_).value_or(0); }
  uint64_t address(const Json& o, std::string_view key) const {
    return json_address(o, key, where_).value_or(0);
  }

  void header(const Json& h) {
    allow_only(h, {"hbmalloc_trace", "recorder", "capacity", "history", "settings"});
    std::optional<int64_t> version = json_i64(h, "hbmalloc_trace", where_);
    if (!version) fail("the first line must be the header {\"hbmalloc_trace\": 1, ...}");
    if (*version != kJsonlVersion)
      fail("JSON lines trace version " + std::to_string(*version) + "; this reader knows version 1");
    trace_.recorder = json_string(h, "recorder", where_).value_or("");
    trace_.capacity = json_u64(h, "capacity", where_);
    trace_.has_history = json_bool(h, "history", where_).value_or(true);
    if (const Json* settings = json_field(h, "settings")) {
      if (!settings->is_object()) fail("\"settings\" must be an object of key: value");
      for (const auto& [key, value] : settings->items())
        trace_.settings.emplace_back(key, value.is_string() ? value.get<std::string>()
                                                            : value.dump(-1, ' ', false,
                                                                         Json::error_handler_t::replace));
    }
  }

  void line_object(const Json& o) {
    std::optional<std::string> action = json_string(o, "action", where_);
    if (!action) fail("missing \"action\"");
    if (*action == "frame") return frame_line(o);
    if (*action == "stack") return stack_line(o);
    if (*action == "annotation") return annotation_line(o);
    int device = checked_device(json_i64(o, "device", where_).value_or(0), where_);
    DeviceTrace& d = assembler_.device(device, where_);
    if (*action == "device") return device_line(o, device);
    if (*action == "live_block") return live_block_line(o, d);
    if (*action == "segment") return segment_line(o, d);
    if (*action == "user_metadata") return user_metadata_line(o, d);
    std::optional<Action> a = *action == "free" ? Action::kFree : action_from_name(*action);
    if (!a) fail("unknown action \"" + printable(*action) + "\"");
    event_line(o, d, *a);
  }

  // Stacks: frames and stacks are numbered in the order their lines come,
  // each before a line that names it.
  void frame_line(const Json& o) {
    allow_only(o, {"action", "filename", "name", "line"});
    Frame f;
    f.filename = json_string(o, "filename", where_).value_or("");
    f.name = json_string(o, "name", where_).value_or("");
    f.line = json_i64(o, "line", where_).value_or(0);
    trace_.frames.push_back(std::move(f));
  }
  void stack_line(const Json& o) {
    allow_only(o, {"action", "frames"});
    const Json* frames = json_field(o, "frames");
    if (frames == nullptr || !frames->is_array()) fail("a stack needs \"frames\", an array of frame numbers");
    std::vector<uint32_t> ids;
    for (const Json& f : *frames) {
      if (!f.is_number_unsigned() || f.get<uint64_t>() >= trace_.frames.size())
        fail("a stack names a frame that no line before it gives");
      ids.push_back(uint32_t(f.get<uint64_t>()));
    }
    if (trace_.stacks.size() >= kNoStack - 1) fail("more than 2^32 stacks");
    trace_.stacks.push_back(std::move(ids));
  }
  // {"action": "annotation", "device": 0, "t": 12, "fields": [["stage", "START"], ["name", "step"]]}
  void annotation_line(const Json& o) {
    allow_only(o, {"action", "device", "t", "fields"});
    Annotation a;
    a.device = checked_device(json_i64(o, "device", where_).value_or(0), where_);
    a.time_us = json_i64(o, "t", where_).value_or(0);
    const Json* fields = json_field(o, "fields");
    if (fields == nullptr || !fields->is_array()) fail("an annotation needs \"fields\", an array of [key, value] texts");
    for (const Json& kv : *fields) {
      if (!kv.is_array() || kv.size() != 2 || !kv[0].is_string() || !kv[1].is_string())
        fail("an annotation's field must be a [key, value] pair of texts");
      a.fields.emplace_back(kv[0].get<std::string>(), kv[1].get<std::string>());
    }
    trace_.annotations.push_back(std::move(a));
  }
  // {"action": "user_metadata", "device": 0, "text": "step 3"}: the device's events from the next on carry it.
  void user_metadata_line(const Json& o, DeviceTrace& d) {
    allow_only(o, {"action", "device", "text"});
    std::optional<std::string> text = json_string(o, "text", where_);
    if (!text) fail("user_metadata needs a \"text\"");
    change_user_metadata(d, std::move(*text));
  }
  // A block's "stack", kept by its dense id until the blocks are counted.
  void stack_of_block(const Json& o, int device, uint32_t id) {
    std::optional<uint64_t> stack = json_u64(o, "stack", where_);
    if (!stack) return;
    if (*stack >= trace_.stacks.size()) fail("names stack " + std::to_string(*stack) + ", which no line before it gives");
    block_stacks_[device].emplace_back(id, uint32_t(*stack));
  }

  void device_line(const Json& o, int device) {
    allow_only(o, {"action", "device", "segment_picture"});
    if (std::optional<bool> picture = json_bool(o, "segment_picture", where_)) picture_[device] = *picture;
  }

  BlockState block_state(const Json& o) const {
    std::optional<std::string> name = json_string(o, "state", where_);
    if (!name) return BlockState::kActiveAllocated;
    for (const auto& [state, n] : kStateNames)
      if (n == *name) return state;
    fail("unknown block state \"" + printable(*name) + "\"");
  }

  void live_block_line(const Json& o, DeviceTrace& d) {
    allow_only(o, {"action", "device", "id", "addr", "size", "requested", "stream", "state", "stack"});
    if (!d.events.empty()) fail("live_block lines must come before the device's events");
    std::optional<uint64_t> key = json_u64(o, "id", where_);
    if (!key) fail("live_block needs an \"id\"");
    if (assembler_.key_state(d.device, *key) == TraceAssembler::KeyState::kLive)
      fail("block " + std::to_string(*key) + " is already live");
    BlockInfo b;
    b.id = assembler_.allocate(d.device, *key, where_);
    b.addr = address(o, "addr");
    b.size = u64(o, "size");
    b.requested = u64(o, "requested");
    b.stream = address(o, "stream");
    b.state = block_state(o);
    stack_of_block(o, d.device, b.id);
    d.live_at_start.push_back(b);
  }

  void segment_line(const Json& o, DeviceTrace& d) {
    allow_only(o, {"action", "device", "at", "addr", "size", "stream", "pool", "expandable", "blocks"});
    std::string at = json_string(o, "at", where_).value_or("start");
    if (at != "start" && at != "end") fail("\"at\" must be \"start\" or \"end\"");
    std::string pool = json_string(o, "pool", where_).value_or("large");
    if (pool != "small" && pool != "large") fail("\"pool\" must be \"small\" or \"large\"");
    SegmentInfo s;
    s.addr = address(o, "addr");
    s.size = u64(o, "size");
    s.stream = address(o, "stream");
    s.small_pool = pool == "small";
    s.expandable = json_bool(o, "expandable", where_).value_or(false);
    if (const Json* blocks = json_field(o, "blocks")) {
      if (!blocks->is_array()) fail("\"blocks\" must be an array");
      for (const Json& block : *blocks) s.blocks.push_back(segment_block(block, d.device));
    }
    (at == "start" ? d.segments_at_start : d.segments_at_end).push_back(std::move(s));
    has_segments_[d.device] = true;
  }

  BlockInfo segment_block(const Json& o, int device) const {
    if (!o.is_object()) fail("each segment block must be an object");
    allow_only(o, {"id", "addr", "size", "requested", "stream", "state"});
    BlockInfo b;
    if (std::optional<uint64_t> key = json_u64(o, "id", where_)) {
      if (assembler_.key_state(device, *key) != TraceAssembler::KeyState::kLive)
        fail("segment block names block " + std::to_string(*key) + " that is not live");
      b.id = assembler_.live_id(device, *key);
    }
    b.addr = address(o, "addr");
    b.size = u64(o, "size");
    b.requested = u64(o, "requested");
    b.stream = address(o, "stream");
    b.state = block_state(o);
    return b;
  }

  void event_line(const Json& o, DeviceTrace& d, Action action) {
    allow_only(o, {"action", "device", "id", "size", "stream", "addr", "t", "stack"});
    Event e;
    e.action = action;
    e.size = u64(o, "size");
    e.addr = address(o, "addr");
    e.stream = address(o, "stream");
    e.time_us = json_i64(o, "t", where_).value_or(0);
    std::optional<uint64_t> key = json_u64(o, "id", where_);
    bool names_block = action == Action::kAlloc || action == Action::kFreeRequested || action == Action::kFree;
    if (names_block && !key) fail(std::string(action_name(action)) + " needs an \"id\"");
    if (!names_block && key) fail(std::string(action_name(action)) + " takes no \"id\"");
    if (names_block) e.id = block_id(d.device, action, *key);
    if (action == Action::kAlloc) stack_of_block(o, d.device, e.id);
    else if (json_field(o, "stack") != nullptr) fail("only an alloc or a live block has a \"stack\"");
    if (is_segment_action(action)) has_segments_[d.device] = true;
    d.events.push_back(e);
  }

  uint32_t block_id(int device, Action action, uint64_t key) {
    TraceAssembler::KeyState state = assembler_.key_state(device, key);
    std::string block = "block " + std::to_string(key);
    if (action == Action::kAlloc) {
      if (state == TraceAssembler::KeyState::kLive) fail("allocates " + block + " that is already live");
      return assembler_.allocate(device, key, where_);
    }
    if (state == TraceAssembler::KeyState::kNeverAllocated) fail("frees " + block + " that was never allocated");
    if (state == TraceAssembler::KeyState::kFreed) fail("frees " + block + " that was already freed");
    return action == Action::kFree ? assembler_.release(device, key) : assembler_.live_id(device, key);
  }

  Trace finish() {
    trace_.source = source_;
    trace_.format = "jsonl";
    trace_.devices = assembler_.finish();
    for (DeviceTrace& d : trace_.devices) {
      auto explicit_picture = picture_.find(d.device);
      d.has_segment_picture =
          explicit_picture != picture_.end() ? explicit_picture->second : has_segments_[d.device];
      auto stacks = block_stacks_.find(d.device);
      if (stacks == block_stacks_.end()) continue;
      d.block_stacks.assign(d.block_count, kNoStack);
      for (const auto& [id, stack] : stacks->second)
        if (id < d.block_count) d.block_stacks[id] = stack;
    }
    return std::move(trace_);
  }

  const std::string& source_;
  std::string where_;
  Trace trace_;
  TraceAssembler assembler_;
  std::map<int, bool> picture_;       // "segment_picture" as written
  std::map<int, bool> has_segments_;  // segment lines or segment events seen
  std::map<int, std::vector<std::pair<uint32_t, uint32_t>>> block_stacks_;  // per device: (dense id, stack)
};

// --- writer --------------------------------------------------------------------

std::string line_of(const Json& object) {
  // Names and settings may hold bytes that are not UTF-8 (from a binary trace).
  return object.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

void put_nonzero(Json& o, const char* key, uint64_t value) {
  if (value != 0) o[key] = value;
}

Json block_object(const BlockInfo& b) {
  Json o = Json::object();
  if (b.id != kNoBlock) o["id"] = b.id;
  put_nonzero(o, "addr", b.addr);
  put_nonzero(o, "size", b.size);
  put_nonzero(o, "requested", b.requested);
  put_nonzero(o, "stream", b.stream);
  if (b.state != BlockState::kActiveAllocated) o["state"] = state_name(b.state);
  return o;
}

Json segment_object(int device, const char* at, const SegmentInfo& s) {
  Json o = {{"action", "segment"}, {"device", device}, {"at", at}};
  put_nonzero(o, "addr", s.addr);
  put_nonzero(o, "size", s.size);
  put_nonzero(o, "stream", s.stream);
  if (s.small_pool) o["pool"] = "small";
  if (s.expandable) o["expandable"] = true;
  if (!s.blocks.empty()) {
    Json blocks = Json::array();
    for (const BlockInfo& b : s.blocks) blocks.push_back(block_object(b));
    o["blocks"] = std::move(blocks);
  }
  return o;
}

void put_stack(Json& o, const DeviceTrace& d, uint32_t id) {
  if (id < d.block_stacks.size() && d.block_stacks[id] != kNoStack) o["stack"] = d.block_stacks[id];
}

Json event_object(int device, const Event& e) {
  Json o = {{"action", action_name(e.action)}, {"device", device}};
  if (e.action == Action::kAlloc || e.action == Action::kFreeRequested || e.action == Action::kFree)
    o["id"] = e.id;
  put_nonzero(o, "size", e.size);
  put_nonzero(o, "addr", e.addr);
  put_nonzero(o, "stream", e.stream);
  if (e.time_us != 0) o["t"] = e.time_us;
  return o;
}

}  // namespace

Trace read_jsonl(std::string_view text, const std::string& source) {
  return JsonlReader(source).read(text);
}

bool looks_like_jsonl(std::string_view text) {
  TextLines lines(text);
  std::string_view line;
  return next_content(lines, line) && line.front() == '{' &&
         line.find("\"hbmalloc_trace\"") != std::string_view::npos;
}

std::string write_jsonl(const Trace& trace) {
  Json header = {{"hbmalloc_trace", kJsonlVersion}, {"recorder", trace.recorder}};
  if (trace.capacity) header["capacity"] = *trace.capacity;
  header["history"] = trace.has_history;
  Json settings = Json::object();
  for (const auto& [key, value] : trace.settings) settings[key] = value;
  header["settings"] = std::move(settings);
  std::string out = line_of(header);
  for (const Frame& f : trace.frames)
    out += line_of({{"action", "frame"}, {"filename", f.filename}, {"name", f.name}, {"line", f.line}});
  for (const std::vector<uint32_t>& s : trace.stacks) out += line_of({{"action", "stack"}, {"frames", s}});
  for (const DeviceTrace& d : trace.devices) {
    out += line_of({{"action", "device"}, {"device", d.device}, {"segment_picture", d.has_segment_picture}});
    for (const BlockInfo& b : d.live_at_start) {
      Json o = block_object(b);
      o["action"] = "live_block";
      o["device"] = d.device;
      put_stack(o, d, b.id);
      out += line_of(o);
    }
    for (const SegmentInfo& s : d.segments_at_start) out += line_of(segment_object(d.device, "start", s));
    auto change = d.user_metadata.begin();
    for (uint64_t i = 0; i < d.events.size(); ++i) {
      for (; change != d.user_metadata.end() && change->event <= i; ++change)
        out += line_of({{"action", "user_metadata"}, {"device", d.device}, {"text", change->text}});
      const Event& e = d.events[i];
      Json o = event_object(d.device, e);
      if (e.action == Action::kAlloc) put_stack(o, d, e.id);
      out += line_of(o);
    }
    for (const SegmentInfo& s : d.segments_at_end) out += line_of(segment_object(d.device, "end", s));
  }
  for (const Annotation& a : trace.annotations) {
    Json fields = Json::array();
    for (const auto& [key, value] : a.fields) fields.push_back({key, value});
    out += line_of({{"action", "annotation"}, {"device", a.device}, {"t", a.time_us}, {"fields", std::move(fields)}});
  }
  return out;
}

void write_jsonl_file(const Trace& trace, const std::string& path) {
  write_whole_file(path, write_jsonl(trace));
}

}  // namespace hbmalloc::trace

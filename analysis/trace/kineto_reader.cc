// PyTorch profiler chrome traces (torch.profiler with profile_memory=True,
// written through kineto). Every allocator call is an instant event in
// "traceEvents":
//   {"ph": "i", "name": "[memory]", "ts": 1623142623529058, "args": {
//     "Device Type": 1, "Device Id": 0, "Addr": 140201234, "Bytes": 19267584,
//     "Total Allocated": 40000000, "Total Reserved": 62914560}}
// Bytes < 0 is a free. "Device Type" is c10::DeviceType: only CUDA (1) counts,
// CPU memory events are skipped. Old profilers (the shared ResNet-50 sample)
// write neither Addr nor the totals. A failed request is "[OutOfMemory]" with
// Bytes and the totals.
//
// What is exact and what is not:
// * With Addr, a free is matched to the live block at that address.
// * Without Addr, a free is matched to the most recent live alloc of the same
//   size on the device: an approximation (equal-size blocks may swap lives),
//   which keeps the live total and so peak requested exact.
// * A free that matches nothing freed a block allocated before profiling
//   began: it becomes a block live at start.
// * Bytes is the block size PyTorch handed out (rounded), so "requested"
//   figures from this format are PyTorch's allocated bytes.
// * PyTorch's reserved bytes are known only as "Total Reserved" after each
//   event: the first figure becomes one synthetic segment at start, and each
//   change a segment_alloc / segment_free of the difference (address 0) just
//   before the event, so the native peak reserved is the largest figure.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "hbmalloc/error.hpp"
#include "trace/json_input.h"
#include "trace/read_trace.h"
#include "trace/trace_assembler.h"

namespace hbmalloc::trace {
namespace {

constexpr std::string_view kMemoryEvent = "[memory]";
constexpr std::string_view kOomEvent = "[OutOfMemory]";
constexpr int64_t kCudaDeviceType = 1;  // c10::DeviceType::CUDA

struct MemoryEvent {
  int64_t ts = 0;
  int device = 0;
  bool oom = false;
  int64_t bytes = 0;
  std::optional<uint64_t> addr;
  std::optional<int64_t> total_reserved;
  size_t index = 0;  // 1 for the file's first memory event, for messages
};

bool is_memory_event(const Json& event) {
  const Json* name = json_field(event, "name");
  return name != nullptr && name->is_string() &&
         (name->get_ref<const std::string&>() == kMemoryEvent ||
          name->get_ref<const std::string&>() == kOomEvent);
}


// Chrome trace "ts" is microseconds, an integer or a float.
int64_t time_us(const Json& event, const std::string& where) {
  const Json* ts = json_field(event, "ts");
  if (ts == nullptr) return 0;
  if (ts->is_number_float()) {
    double v = ts->get<double>();
    if (!std::isfinite(v) || std::fabs(v) >= 9.0e18) throw Error(ErrorCode::kInvalidArgument, where + ": \"ts\" out of range");
    return static_cast<int64_t>(std::floor(v));
  }
  return json_i64(event, "ts", where).value_or(0);
}

class KinetoReader {
 public:
  explicit KinetoReader(const std::string& source) : source_(source) {}

  Trace read(std::string_view json) {
    // Each trace event is read as it is parsed and none is kept: a profiler
    // trace is mostly kernels and operators, and a memory event is smaller
    // read than as a JSON document.
    std::vector<MemoryEvent> memory;
    size_t index = 0;
    Json root = parse_json_keeping(json, source_, "traceEvents", [&](const Json& event) {
      collect(event, index, memory);
      return false;
    });
    const Json* events = json_field(root, "traceEvents");
    if (events == nullptr || !events->is_array())
      throw Error(ErrorCode::kInvalidArgument, source_ + ": not a profiler trace (no \"traceEvents\" list)");
    // Chrome traces need not be in time order; equal times keep file order.
    std::stable_sort(memory.begin(), memory.end(),
                     [](const MemoryEvent& a, const MemoryEvent& b) { return a.ts < b.ts; });
    for (const MemoryEvent& m : memory) apply(m);

    Trace trace;
    trace.source = source_;
    trace.format = "kineto";
    trace.recorder = "pytorch profiler";
    trace.has_history = true;
    trace.capacity = capacity(root);
    for (auto& [number, d] : devices_) trace.devices.push_back(d.finish());
    return trace;
  }

 private:
  // One device while reading: blocks get provisional numbers in the order
  // they appear; blocks found live at start are numbered first at the end.
  struct Device {
    DeviceTrace trace;
    std::vector<bool> from_start;  // by provisional number
    std::vector<BlockInfo> blocks;
    std::unordered_map<uint64_t, uint32_t> live_by_addr;
    std::unordered_map<uint64_t, std::vector<uint32_t>> live_by_size;  // events without Addr
    std::optional<int64_t> reserved;

    DeviceTrace finish() {
      std::vector<uint32_t> final_id(blocks.size());
      uint32_t next = 0;
      for (size_t i = 0; i < blocks.size(); ++i)
        if (from_start[i]) {
          final_id[i] = next++;
          trace.live_at_start.push_back(blocks[i]);
          trace.live_at_start.back().id = final_id[i];
        }
      for (size_t i = 0; i < blocks.size(); ++i)
        if (!from_start[i]) final_id[i] = next++;
      for (Event& e : trace.events)
        if (e.id != kNoBlock) e.id = final_id[e.id];
      trace.block_count = next;
      return std::move(trace);
    }
  };

  [[noreturn]] void fail(const MemoryEvent& m, const std::string& problem) const {
    throw Error(ErrorCode::kInvalidArgument, source_ + ": memory event " + std::to_string(m.index) + ": " + problem);
  }

  // Appends `event` to `out` when it is a memory event of a CUDA device;
  // `index` counts the memory events seen, for messages.
  void collect(const Json& event, size_t& index, std::vector<MemoryEvent>& out) const {
    if (!is_memory_event(event)) return;
    size_t i = ++index;
    std::string where = source_ + ": memory event " + std::to_string(i);
    const Json* args = json_field(event, "args");
    if (args == nullptr || !args->is_object()) throw Error(ErrorCode::kInvalidArgument, where + ": no \"args\"");
    if (json_i64(*args, "Device Type", where).value_or(-1) != kCudaDeviceType) return;
    MemoryEvent m;
    m.index = i;
    m.ts = time_us(event, where);
    m.device = checked_device(json_i64(*args, "Device Id", where).value_or(0), where);
    m.oom = json_field(event, "name")->get_ref<const std::string&>() == kOomEvent;
    std::optional<int64_t> bytes = json_i64(*args, "Bytes", where);
    if (!bytes) throw Error(ErrorCode::kInvalidArgument, where + ": no \"Bytes\"");
    if (*bytes == INT64_MIN) throw Error(ErrorCode::kInvalidArgument, where + ": \"Bytes\" out of range");
    m.bytes = *bytes;
    // Addr is a signed intptr_t in the trace.
    if (std::optional<int64_t> addr = json_i64(*args, "Addr", where)) m.addr = static_cast<uint64_t>(*addr);
    m.total_reserved = json_i64(*args, "Total Reserved", where);
    if (m.total_reserved && *m.total_reserved < 0) m.total_reserved.reset();
    out.push_back(m);
  }

  void apply(const MemoryEvent& m) {
    Device& d = devices_[m.device];
    d.trace.device = m.device;
    reserved_change(d, m);
    Event e;
    e.time_us = m.ts;
    e.size = static_cast<uint64_t>(m.bytes < 0 ? -m.bytes : m.bytes);
    if (m.oom) {
      e.action = Action::kOom;
    } else if (m.bytes > 0) {
      e.action = Action::kAlloc;
      e.addr = m.addr.value_or(0);
      e.id = new_block(d, m, e.size, /*from_start=*/false);
      if (m.addr) {
        if (!d.live_by_addr.emplace(*m.addr, e.id).second)
          fail(m, "allocates address " + std::to_string(*m.addr) + " on device " +
                      std::to_string(m.device) + " that is already live");
      } else {
        d.live_by_size[e.size].push_back(e.id);
      }
    } else if (m.bytes < 0) {
      e.action = Action::kFree;
      e.addr = m.addr.value_or(0);
      e.id = matching_block(d, m, e.size);
    } else {
      return;  // a zero-byte event allocates nothing
    }
    d.trace.events.push_back(e);
  }

  uint32_t new_block(Device& d, const MemoryEvent& m, uint64_t size, bool from_start) {
    if (d.blocks.size() >= kNoBlock) fail(m, "too many blocks");
    BlockInfo b;
    b.addr = m.addr.value_or(0);
    b.size = size;
    b.requested = size;
    d.blocks.push_back(b);
    d.from_start.push_back(from_start);
    return static_cast<uint32_t>(d.blocks.size() - 1);
  }

  // The live block a free ends; a block live since before the trace when none matches.
  uint32_t matching_block(Device& d, const MemoryEvent& m, uint64_t size) {
    if (m.addr) {
      auto it = d.live_by_addr.find(*m.addr);
      if (it != d.live_by_addr.end()) {
        uint32_t id = it->second;
        if (d.blocks[id].size != size)
          fail(m, "frees " + std::to_string(size) + " bytes at address " + std::to_string(*m.addr) +
                      ", allocated with " + std::to_string(d.blocks[id].size));
        d.live_by_addr.erase(it);
        return id;
      }
    } else {
      auto it = d.live_by_size.find(size);
      if (it != d.live_by_size.end() && !it->second.empty()) {
        uint32_t id = it->second.back();
        it->second.pop_back();
        return id;
      }
    }
    return new_block(d, m, size, /*from_start=*/true);
  }

  // "Total Reserved" is the figure after the event: its change since the
  // last figure is what PyTorch reserved or released in between.
  void reserved_change(Device& d, const MemoryEvent& m) {
    if (!m.total_reserved) return;
    int64_t now = *m.total_reserved;
    if (!d.reserved) {
      d.trace.has_segment_picture = true;
      if (now > 0) {
        SegmentInfo s;
        s.size = static_cast<uint64_t>(now);
        d.trace.segments_at_start.push_back(s);
      }
    } else if (now != *d.reserved) {
      Event e;
      e.time_us = m.ts;
      e.action = now > *d.reserved ? Action::kSegmentAlloc : Action::kSegmentFree;
      e.size = now > *d.reserved ? static_cast<uint64_t>(now - *d.reserved)
                                 : static_cast<uint64_t>(*d.reserved - now);
      d.trace.events.push_back(e);
    }
    d.reserved = now;
  }

  // The smallest "totalGlobalMem" among the devices the memory events use.
  std::optional<uint64_t> capacity(const Json& root) const {
    const Json* properties = json_field(root, "deviceProperties");
    if (properties == nullptr || !properties->is_array()) return std::nullopt;
    std::optional<uint64_t> smallest;
    for (const Json& p : *properties) {
      std::optional<int64_t> id = json_i64(p, "id", source_);
      std::optional<uint64_t> total = json_u64(p, "totalGlobalMem", source_);
      if (!id || !total || devices_.count(static_cast<int>(std::clamp<int64_t>(*id, -1, kMaxDevices))) == 0)
        continue;
      smallest = std::min(smallest.value_or(*total), *total);
    }
    return smallest;
  }

  const std::string& source_;
  std::map<int, Device> devices_;
};

}  // namespace

Trace read_kineto(std::string_view json, const std::string& source) {
  return KinetoReader(source).read(json);
}

}  // namespace hbmalloc::trace

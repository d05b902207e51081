// The one in-memory trace model. Every reader turns its format into a Trace;
// nothing downstream (replay, reports, tune) knows where a trace came from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hbmalloc::trace {

enum class Action : uint8_t {
  kAlloc,          // block `id` of `size` requested bytes at `addr` on `stream`
  kFreeRequested,  // the caller let go of `id`; streams may still use it
  kFree,           // block `id` returned to the allocator (PyTorch: free_completed)
  kSegmentAlloc,   // what the recording allocator reserved: `size` bytes at `addr`
  kSegmentFree,
  kSegmentMap,     // expandable segments: pages mapped / unmapped at `addr`
  kSegmentUnmap,
  kOom,            // the recording allocator failed a request of `size`; `addr` = device free bytes
  kEmptyCache,
  kSnapshot,       // a snapshot was taken here
  kMarker,         // anything else a recorder wants to mark (no effect on replay)
};

// Stable lower-case names ("alloc", "free_requested", "free_completed",
// "segment_alloc", ...): PyTorch's spelling where PyTorch has the action.
const char* action_name(Action a);
std::optional<Action> action_from_name(std::string_view name);

constexpr uint32_t kNoBlock = UINT32_MAX;

struct Event {
  int64_t time_us = 0;   // 0 when the format has no time
  uint64_t addr = 0;     // address in the recording (0 when unknown)
  uint64_t size = 0;     // requested bytes (alloc / free), segment bytes, OOM request
  uint64_t stream = 0;
  uint32_t id = kNoBlock;  // dense block id for alloc / free events, else kNoBlock
  Action action = Action::kMarker;
};

// A block as a snapshot shows it.
enum class BlockState : uint8_t { kActiveAllocated, kActivePendingFree, kInactive };

// A frame of a recorded stack, as PyTorch's snapshots give it.
struct Frame {
  std::string filename;
  std::string name;
  int64_t line = 0;  // 0 (or -1) when unknown
  bool operator==(const Frame&) const = default;
};
// Indexes into Trace::stacks; no stack recorded.
constexpr uint32_t kNoStack = UINT32_MAX;

struct BlockInfo {
  uint32_t id = kNoBlock;  // block id for live blocks in DeviceTrace::live_at_start
  uint64_t addr = 0;
  uint64_t size = 0;       // bytes the block occupies (0 when the trace does not say)
  uint64_t requested = 0;  // bytes the caller asked for
  uint64_t stream = 0;
  BlockState state = BlockState::kActiveAllocated;
  uint32_t stack = kNoStack;  // where it was allocated, when the trace tells
};

// A mark a recording put on the timeline, with no effect on replay:
// PyTorch's external annotations (record_function ranges, optimizer steps,
// compile phases) are key / value text, usually "stage" (START or END) and
// "name".
struct Annotation {
  int device = 0;
  int64_t time_us = 0;  // on the clock of the device's events
  std::vector<std::pair<std::string, std::string>> fields;  // in the order recorded
  // The value of `key`, "" when absent.
  std::string_view field(std::string_view key) const {
    for (const auto& [k, v] : fields)
      if (k == key) return v;
    return {};
  }
  bool operator==(const Annotation&) const = default;
};

// Where the user's metadata (torch.cuda.memory._set_memory_metadata), which
// PyTorch attaches to every entry recorded after it is set, changes: entries
// from event `event` on carry `text` ("": none) until the next change.
struct MetadataChange {
  uint64_t event = 0;
  std::string text;
  bool operator==(const MetadataChange&) const = default;
};

struct SegmentInfo {
  uint64_t addr = 0;
  uint64_t size = 0;  // total_size
  uint64_t stream = 0;
  bool small_pool = false;  // PyTorch segment_type "small"
  bool expandable = false;
  std::vector<BlockInfo> blocks;  // in address order, covering the segment when known
};

// Everything one device saw. Block ids are dense: 0..block_count-1; the
// blocks live at start take the first ids, then each alloc event the next.
struct DeviceTrace {
  int device = 0;
  std::vector<BlockInfo> live_at_start;      // live when the trace begins (ids 0..n-1)
  std::vector<SegmentInfo> segments_at_start;  // what the recorder held then (blocks may be empty)
  std::vector<SegmentInfo> segments_at_end;    // the final picture, when the format has one
  std::vector<Event> events;
  uint32_t block_count = 0;
  bool has_segment_picture = false;  // segments_at_start / _at_end are meaningful
  // By block id, the stack its allocation recorded (kNoStack: none); empty
  // when the trace records no stacks.
  std::vector<uint32_t> block_stacks;
  // In event order; events before the first change carry none. Empty when
  // the trace records no user metadata.
  std::vector<MetadataChange> user_metadata;
};

// For readers of streams: the device's events from its next one on carry
// `text` (two changes before an event: the later holds).
inline void change_user_metadata(DeviceTrace& d, std::string text) {
  if (!d.user_metadata.empty() && d.user_metadata.back().event == d.events.size())
    d.user_metadata.back().text = std::move(text);
  else
    d.user_metadata.push_back(MetadataChange{d.events.size(), std::move(text)});
}

// The stack a block's allocation recorded: its own (a final picture's
// block), else its id's in the device's block_stacks; kNoStack when neither.
inline uint32_t stack_of(const DeviceTrace& d, const BlockInfo& b) {
  if (b.stack != kNoStack) return b.stack;
  return b.id < d.block_stacks.size() ? d.block_stacks[b.id] : kNoStack;
}

struct Trace {
  std::string source;  // the file it was read from
  std::string format;  // "pytorch-snapshot", "kineto", "rmm-csv", "hbt", "jsonl"
  std::string recorder;  // who wrote it, when known ("pytorch", "hbmalloc 0.1.0", ...)
  std::optional<uint64_t> capacity;  // device capacity when the trace tells
  bool has_history = false;  // false for a static snapshot (segments only)
  // allocator_settings (PyTorch) or the config that produced the trace, as
  // key / value text in the order found.
  std::vector<std::pair<std::string, std::string>> settings;
  std::vector<DeviceTrace> devices;  // sorted by device number
  // Each distinct frame and each distinct stack once (a stack: frame ids,
  // innermost first); blocks refer to stacks by index.
  std::vector<Frame> frames;
  std::vector<std::vector<uint32_t>> stacks;
  std::vector<Annotation> annotations;  // every device's, in the order recorded

  const DeviceTrace* device(int number) const;
  // The device, or Error(kInvalidArgument) naming the source and the devices there.
  const DeviceTrace& device_or_error(int number) const;
};

// Figures any trace defines without replaying it (see ../shared/traces/README.md):
// live requested bytes from live_at_start through alloc / kFree, and the
// recording allocator's reserved bytes from segments_at_start through segment events.
struct TraceFigures {
  uint64_t events = 0;
  uint64_t allocs = 0, frees = 0;  // alloc and free_completed events
  uint64_t segment_events = 0;
  int64_t first_time_us = 0, last_time_us = 0;  // over events with a time (0: none)
  uint64_t peak_requested = 0;
  // The peak had every failed request (OOM event) been served at its place
  // and let go at once: live requested bytes plus the request. No allocator
  // serves the whole trace in less.
  uint64_t peak_demand = 0;
  std::optional<uint64_t> native_peak_reserved;  // when has_segment_picture
  uint64_t native_ooms = 0;
  // The device memory the recording allocator could use, as its first OOM
  // tells: what it reserved then plus what the device had free (when known).
  std::optional<uint64_t> native_capacity;

  // peak_requested / native_peak_reserved, when the trace tells the latter.
  std::optional<double> native_efficiency() const {
    if (!native_peak_reserved || *native_peak_reserved == 0) return std::nullopt;
    return double(peak_requested) / double(*native_peak_reserved);
  }
};
TraceFigures figures_of(const DeviceTrace& d);

// TraceFigures built one event at a time, so a pass that reads the events
// anyway (replay) gets them without a second read of the whole trace.
class FiguresTally {
 public:
  explicit FiguresTally(const DeviceTrace& d);
  // Every event of d, in order, once.
  void add(const Event& e) {
    if (e.time_us != 0) {
      if (f_.first_time_us == 0 || e.time_us < f_.first_time_us) f_.first_time_us = e.time_us;
      if (e.time_us > f_.last_time_us) f_.last_time_us = e.time_us;
    }
    switch (e.action) {
      case Action::kAlloc:
        ++f_.allocs;
        if (e.id < live_.size()) live_[e.id] = e.size;
        requested_ += e.size;
        if (requested_ > f_.peak_requested) f_.peak_requested = requested_;
        break;
      case Action::kFree:
        ++f_.frees;
        if (e.id < live_.size()) {
          requested_ -= live_[e.id];
          live_[e.id] = 0;
        }
        break;
      case Action::kSegmentAlloc:
      case Action::kSegmentMap:
        ++f_.segment_events;
        reserved_ += e.size;
        if (reserved_ > peak_reserved_) peak_reserved_ = reserved_;
        break;
      case Action::kSegmentFree:
      case Action::kSegmentUnmap:
        ++f_.segment_events;
        reserved_ -= e.size;
        break;
      case Action::kOom:
        if (requested_ + e.size > f_.peak_demand) f_.peak_demand = requested_ + e.size;
        // PyTorch records the device's free bytes after releasing its cache.
        if (f_.native_ooms++ == 0 && has_segment_picture_) f_.native_capacity = reserved_ + e.addr;
        break;
      default:
        break;
    }
  }
  TraceFigures finish() const;
  // After the events added so far: requested bytes live, and what the
  // recording allocator held (segments at start plus segment events).
  uint64_t live_requested() const { return requested_; }
  uint64_t reserved() const { return reserved_; }

 private:
  TraceFigures f_;
  std::vector<uint64_t> live_;  // requested bytes per live block, so a free subtracts what its alloc added
  uint64_t requested_ = 0, reserved_ = 0, peak_reserved_ = 0;
  bool has_segment_picture_ = false;
};

// Device numbers a trace may use: 0..kMaxDevices-1.
constexpr int64_t kMaxDevices = 1024;

// `number` as a device number; throws Error "<where>: device N out of range".
int checked_device(int64_t number, const std::string& where);

}  // namespace hbmalloc::trace

#include "record/recorder.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "hbmalloc/error.hpp"
#include "hbmalloc/recorder.hpp"

namespace hbmalloc::trace {
namespace {

// A process killed between flushes loses at most this much of the trace.
constexpr int64_t kFlushIntervalUs = 1000000;

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

BlockState state_of(bool pending) { return pending ? BlockState::kActivePendingFree : BlockState::kActiveAllocated; }

}  // namespace

TraceRecorder::TraceRecorder(const Options& options) : options_(options) {
  header_.recorder = std::string("hbmalloc ") + HBMALLOC_VERSION;
  if (!options_.path.empty()) open_file(options_.path);
}

TraceRecorder::~TraceRecorder() {
  try {
    stop_file();
  } catch (const Error&) {
    // A destructor cannot report it; stop_file() called earlier would have.
  }
}

// --- the file -----------------------------------------------------------------

void TraceRecorder::open_file(const std::string& path) {
  File file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file)
    throw Error(ErrorCode::kInvalidArgument, path + ": cannot create the trace file: " + std::strerror(errno));
  file_ = std::move(file);
  file_path_ = path;
  file_error_.clear();
  header_written_ = false;
  writer_ = std::make_unique<HbtWriter>(file_.get(), path, options_.flush_every);
  last_flush_us_ = now_us();
  ++file_number_;
  frames_in_file_ = stacks_in_file_ = 0;
}

// Runs f on the writer; a failure stops the file (recording in memory goes
// on) and is reported by stop_file(): an allocation must not fail for it.
template <typename F>
void TraceRecorder::write(F&& f) {
  if (!writer_) return;
  try {
    f(*writer_);
  } catch (const std::exception& e) {
    file_error_ = e.what();
    std::fprintf(stderr, "hbmalloc: trace recording stopped: %s\n", e.what());
    writer_.reset();
    file_.reset();
  }
}

void TraceRecorder::write_header() {
  write([&](HbtWriter& w) { w.header(header_); });
  header_written_ = true;
}

void TraceRecorder::begin_device_in_file(int number, Device& d) {
  // The file numbers the blocks live now 0..n-1, in address order.
  std::vector<std::pair<uint64_t, LiveRecord*>> live;
  live.reserve(d.live.size());
  for (auto& [ptr, r] : d.live) live.emplace_back(ptr, &r);
  std::sort(live.begin(), live.end());
  d.file_blocks = 0;
  for (auto& [ptr, r] : live) r->file_id = d.file_blocks++;
  d.in_file = true;
  const std::vector<BlockInfo> blocks = live_blocks(d, Ids::kFile);
  const std::vector<SegmentInfo> segments = segments_now(d, Ids::kNone);
  write([&](HbtWriter& w) {
    w.device(number, true);
    for (const BlockInfo& b : blocks) w.live_block(number, b);
    for (const SegmentInfo& s : segments) w.segment(number, SegmentWhen::kAtStart, s);
  });
  for (const auto& [ptr, r] : live)
    if (r->stack != kNoStack) write_block_stack(number, r->file_id, r->stack);
}

void TraceRecorder::start_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!file_path_.empty())
    throw Error(ErrorCode::kInvalidArgument,
                "a trace is already being written to " + file_path_ + " (stop it first): cannot start " + path);
  open_file(path);
  if (!header_known_) return;  // the first device to attach brings the header
  write_header();
  for (auto& [number, d] : devices_)
    if (d.attached) begin_device_in_file(number, d);
}

void TraceRecorder::end_file() {
  if (!header_written_) write_header();
  for (auto& [device_number, d] : devices_) {
    if (!d.in_file) continue;
    const int number = device_number;  // clang 14 cannot capture a structured binding in a lambda
    const std::vector<SegmentInfo> end = segments_now(d, Ids::kFile);
    write([&](HbtWriter& w) {
      for (const SegmentInfo& s : end) w.segment(number, SegmentWhen::kAtEnd, s);
    });
  }
  write([](HbtWriter& w) { w.finish(); });
}

void TraceRecorder::stop_file() {
  std::lock_guard<std::mutex> lock(mu_);
  if (file_path_.empty()) return;
  if (writer_) end_file();
  std::string error = file_error_;
  writer_.reset();
  if (file_ && std::fclose(file_.release()) != 0 && error.empty())
    error = file_path_ + ": write failed: " + std::strerror(errno);
  file_.reset();
  for (auto& [number, d] : devices_) d.in_file = false;
  file_path_.clear();
  file_error_.clear();
  if (!error.empty()) throw Error(ErrorCode::kInvalidArgument, error);
}

// --- devices --------------------------------------------------------------------

void TraceRecorder::attach(const DeviceSetup& setup) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = devices_.try_emplace(setup.device);
  if (!inserted)
    throw Error(ErrorCode::kInvalidArgument,
                "device " + std::to_string(setup.device) + " is already recorded by this recorder");
  Device& d = it->second;
  d.capacity = setup.capacity;
  if (!header_known_) {
    header_.capacity = setup.capacity;
    header_.settings = setup.settings;
    header_known_ = true;
  }
  for (const SegmentInfo& s : setup.segments) d.segments[s.addr] = HeldSegment{s.size, s.small_pool, s.expandable};
  for (const BlockInfo& b : setup.live) {
    LiveRecord r;
    r.requested = b.requested;
    r.size = b.size;
    r.stream = b.stream;
    r.pending = b.state == BlockState::kActivePendingFree;
    if (options_.memory_events > 0) {
      r.memory_id = d.memory.block_count++;
      d.memory_serials.push_back(kNoSerial);
    }
    d.live.emplace(b.addr, r);
  }
  if (options_.memory_events > 0) {
    d.memory.device = setup.device;
    d.memory.has_segment_picture = true;
    d.memory.live_at_start = live_blocks(d, Ids::kMemory);
    d.memory.segments_at_start = segments_now(d, Ids::kNone);
  }
  if (writer_) {
    if (!header_written_) write_header();
    begin_device_in_file(setup.device, d);
  }
}

void TraceRecorder::detach(int device) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = devices_.find(device);
  if (it != devices_.end()) it->second.attached = false;
}

TraceRecorder::Device* TraceRecorder::active(int device) {
  auto it = devices_.find(device);
  return it != devices_.end() && it->second.attached ? &it->second : nullptr;
}

// --- events ---------------------------------------------------------------------

void TraceRecorder::emit(int number, Device& d, Event e, const LiveRecord* r) {
  e.time_us = now_us();
  if (writer_ && d.in_file) {
    write([&](HbtWriter& w) {
      Event in_file = e;
      if (r != nullptr) in_file.id = r->file_id;
      w.event(number, in_file);
      if (e.time_us - last_flush_us_ >= kFlushIntervalUs) {
        w.flush();
        last_flush_us_ = e.time_us;
      }
    });
  }
  if (options_.memory_events > 0) {
    if (r != nullptr) e.id = r->memory_id;
    remember(d, e);
  }
}

void TraceRecorder::alloc(int device, uint64_t ptr, uint64_t requested, uint64_t size, bool small_pool,
                          uint64_t stream) {
  std::lock_guard<std::mutex> lock(mu_);
  Device* d = active(device);
  if (d == nullptr) return;
  LiveRecord r;
  r.requested = requested;
  r.size = size;
  r.stream = stream;
  r.small_pool = small_pool;
  if (writer_ && d->in_file) {
    if (d->file_blocks >= kNoBlock - 1) {
      write([&](HbtWriter&) {
        throw Error(ErrorCode::kInvalidArgument, file_path_ + ": more blocks than the format's 32-bit ids hold");
      });
    } else {
      r.file_id = d->file_blocks++;
    }
  }
  r.serial = next_serial_++;
  if (options_.memory_events > 0) {
    r.memory_id = d->memory.block_count++;
    d->memory_serials.push_back(r.serial);
  }
  if (namer_ != nullptr) {
    if (const StackToken* token = StackScope::current(); token != nullptr && *token != nullptr) {
      if (pending_stacks_.size() < kMaxPendingStacks)
        pending_stacks_.push_back(PendingStack{device, ptr, r.serial, r.file_id, file_number_, *token});
    }
  }
  d->live.insert_or_assign(ptr, r);
  emit(device, *d, Event{0, ptr, requested, stream, kNoBlock, Action::kAlloc}, &r);
}

// The state after the event is what a midpoint taken by emit() must see:
// pending set before, the block gone before its free_completed.
void TraceRecorder::release(int number, Device& d, uint64_t ptr, bool requested, bool completed) {
  auto it = d.live.find(ptr);
  if (it == d.live.end()) return;  // handed out before the recorder was attached
  if (requested) {
    it->second.pending = true;
    emit(number, d, Event{0, ptr, it->second.requested, it->second.stream, kNoBlock, Action::kFreeRequested},
         &it->second);
  }
  if (completed) {
    const LiveRecord r = it->second;
    d.live.erase(it);
    emit(number, d, Event{0, ptr, r.requested, r.stream, kNoBlock, Action::kFree}, &r);
  }
}

void TraceRecorder::free_requested(int device, uint64_t ptr) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Device* d = active(device)) release(device, *d, ptr, true, false);
}

void TraceRecorder::free_completed(int device, uint64_t ptr) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Device* d = active(device)) release(device, *d, ptr, false, true);
}

void TraceRecorder::free(int device, uint64_t ptr) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Device* d = active(device)) release(device, *d, ptr, true, true);
}

// The trace model has no record_stream action; its effect is the gap between
// free_requested and free_completed. A marker keeps where and which stream.
void TraceRecorder::record_stream(int device, uint64_t ptr, uint64_t stream) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Device* d = active(device)) emit(device, *d, Event{0, ptr, 0, stream, kNoBlock, Action::kMarker}, nullptr);
}

void TraceRecorder::oom(int device, uint64_t request, uint64_t device_free) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Device* d = active(device))
    emit(device, *d, Event{0, device_free, request, 0, kNoBlock, Action::kOom}, nullptr);
}

void TraceRecorder::empty_cache(int device) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Device* d = active(device)) emit(device, *d, Event{0, 0, 0, 0, kNoBlock, Action::kEmptyCache}, nullptr);
}

void TraceRecorder::segment_alloc(int device, uint64_t ptr, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  Device* d = active(device);
  if (d == nullptr) return;
  d->segments[ptr] = HeldSegment{bytes, false};  // its pool shows in the blocks it holds
  emit(device, *d, Event{0, ptr, bytes, 0, kNoBlock, Action::kSegmentAlloc}, nullptr);
}

void TraceRecorder::segment_free(int device, uint64_t ptr, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  Device* d = active(device);
  if (d == nullptr || d->segments.erase(ptr) == 0) return;  // reserved before the recorder was attached
  emit(device, *d, Event{0, ptr, bytes, 0, kNoBlock, Action::kSegmentFree}, nullptr);
}

void TraceRecorder::segment_map(int device, uint64_t ptr, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  Device* d = active(device);
  if (d == nullptr) return;
  // Joined to the expandable segments it touches on either side.
  uint64_t start = ptr, size = bytes;
  bool small_pool = false;
  auto next = d->segments.lower_bound(ptr);
  if (next != d->segments.begin()) {
    auto prev = std::prev(next);
    if (prev->second.expandable && prev->first + prev->second.bytes == ptr) {
      start = prev->first;
      size += prev->second.bytes;
      small_pool = prev->second.small_pool;
      d->segments.erase(prev);
    }
  }
  next = d->segments.find(ptr + bytes);
  if (next != d->segments.end() && next->second.expandable) {
    size += next->second.bytes;
    small_pool = small_pool || next->second.small_pool;
    d->segments.erase(next);
  }
  d->segments[start] = HeldSegment{size, small_pool, true};
  emit(device, *d, Event{0, ptr, bytes, 0, kNoBlock, Action::kSegmentMap}, nullptr);
}

void TraceRecorder::segment_unmap(int device, uint64_t ptr, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  Device* d = active(device);
  if (d == nullptr) return;
  auto it = d->segments.upper_bound(ptr);
  if (it == d->segments.begin()) return;
  --it;
  const uint64_t start = it->first, end = start + it->second.bytes;
  if (ptr + bytes > end) return;  // mapped before the recorder was attached
  const HeldSegment held = it->second;
  d->segments.erase(it);
  if (ptr > start) d->segments[start] = HeldSegment{ptr - start, held.small_pool, true};
  if (ptr + bytes < end) d->segments[ptr + bytes] = HeldSegment{end - ptr - bytes, held.small_pool, true};
  emit(device, *d, Event{0, ptr, bytes, 0, kNoBlock, Action::kSegmentUnmap}, nullptr);
}

// --- the memory buffer ------------------------------------------------------------

void TraceRecorder::remember(Device& d, const Event& e) {
  const size_t cap = std::max<size_t>(options_.memory_events, 2);
  d.memory.events.push_back(e);
  if (!d.midpoint && d.memory.events.size() >= cap / 2) take_midpoint(d);
  if (d.memory.events.size() >= cap) drop_first_half(d);
}

void TraceRecorder::take_midpoint(Device& d) {
  Midpoint m;
  m.event = d.memory.events.size();
  m.block_count = d.memory.block_count;
  m.live = live_blocks(d, Ids::kMemory);
  m.segments = segments_now(d, Ids::kNone);
  d.midpoint = std::move(m);
}

// The blocks live at the midpoint become the trace's live_at_start, ids
// 0..n-1 in their old order; later blocks keep their order after them.
void TraceRecorder::drop_first_half(Device& d) {
  Midpoint& m = *d.midpoint;
  const uint32_t n = static_cast<uint32_t>(m.live.size());
  std::vector<uint32_t> renumber(m.block_count, kNoBlock);
  for (uint32_t i = 0; i < n; ++i) {
    renumber[m.live[i].id] = i;
    m.live[i].id = i;
  }
  auto new_id = [&](uint32_t old) { return old < m.block_count ? renumber[old] : old - m.block_count + n; };
  std::vector<Event>& events = d.memory.events;
  events.erase(events.begin(), events.begin() + static_cast<ptrdiff_t>(m.event));
  for (Event& e : events)
    if (e.id != kNoBlock) e.id = new_id(e.id);
  for (auto& [ptr, r] : d.live) r.memory_id = new_id(r.memory_id);
  const uint32_t kept = d.memory.block_count - m.block_count + n;
  std::vector<uint64_t> serials(kept, kNoSerial);
  for (uint32_t old = 0; old < d.memory.block_count; ++old)
    if (const uint32_t now = new_id(old); now != kNoBlock) serials[now] = d.memory_serials[old];
  d.memory_serials = std::move(serials);
  if (!d.serial_stacks.empty()) {
    // Stacks of blocks the buffer no longer names go; serials only grow.
    const uint64_t oldest = *std::min_element(d.memory_serials.begin(), d.memory_serials.end());
    d.serial_stacks.erase(d.serial_stacks.begin(), d.serial_stacks.lower_bound(oldest));
  }
  d.memory.block_count = kept;
  ++d.memory_generation;
  d.memory.live_at_start = std::move(m.live);
  d.memory.segments_at_start = std::move(m.segments);
  d.midpoint.reset();
  take_midpoint(d);  // the kept half is at least cap / 2 events: the next midpoint is now
}

// --- pictures ---------------------------------------------------------------------

std::vector<BlockInfo> TraceRecorder::live_blocks(const Device& d, Ids ids) const {
  std::vector<BlockInfo> out;
  out.reserve(d.live.size());
  for (const auto& [ptr, r] : d.live)
    out.push_back(BlockInfo{ids == Ids::kFile ? r.file_id : r.memory_id, ptr, r.size, r.requested, r.stream, state_of(r.pending)});
  std::sort(out.begin(), out.end(), [](const BlockInfo& a, const BlockInfo& b) { return a.id < b.id; });
  return out;
}

// Segments in address order; with blocks (named by `ids`) each is tiled
// with the live blocks in it and inactive blocks for the gaps, as a snapshot
// shows them.
std::vector<SegmentInfo> TraceRecorder::segments_now(const Device& d, Ids ids) const {
  std::vector<SegmentInfo> out;
  out.reserve(d.segments.size());
  for (const auto& [addr, held] : d.segments) {
    SegmentInfo s;
    s.addr = addr;
    s.size = held.bytes;
    s.small_pool = held.small_pool;
    s.expandable = held.expandable;
    out.push_back(std::move(s));
  }
  if (ids == Ids::kNone) return out;
  std::vector<std::pair<uint64_t, const LiveRecord*>> live;
  live.reserve(d.live.size());
  for (const auto& [ptr, r] : d.live) live.emplace_back(ptr, &r);
  std::sort(live.begin(), live.end());
  auto next = live.begin();
  for (SegmentInfo& s : out) {
    const uint64_t end = s.addr + s.size;
    uint64_t at = s.addr;
    bool first = true;
    for (; next != live.end() && next->first < end; ++next) {
      if (next->first < at) continue;  // outside every segment, or overlapping: cannot be tiled
      const LiveRecord& r = *next->second;
      const uint64_t size = std::min(r.size != 0 ? r.size : r.requested, end - next->first);
      if (first) s.stream = r.stream;  // a segment serves the stream of its blocks
      first = false;
      if (next->first > at) s.blocks.push_back(BlockInfo{kNoBlock, at, next->first - at, 0, 0, BlockState::kInactive});
      s.blocks.push_back(BlockInfo{ids == Ids::kFile ? r.file_id : r.memory_id, next->first, size, r.requested,
                                   r.stream, state_of(r.pending)});
      s.small_pool = s.small_pool || r.small_pool;
      at = next->first + size;
    }
    if (at < end) s.blocks.push_back(BlockInfo{kNoBlock, at, end - at, 0, 0, BlockState::kInactive});
    for (BlockInfo& b : s.blocks)
      if (b.state == BlockState::kInactive) b.stream = s.stream;
  }
  return out;
}

std::optional<Trace> TraceRecorder::recent(int device) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = devices_.find(device);
  if (options_.memory_events == 0 || it == devices_.end()) return std::nullopt;
  const Device& d = it->second;
  Trace t;
  t.format = "hbt";
  t.recorder = header_.recorder;
  t.capacity = d.capacity;
  t.has_history = true;
  t.settings = header_.settings;
  DeviceTrace dt = d.memory;
  dt.device = device;
  dt.has_segment_picture = true;
  dt.segments_at_end = segments_now(d, Ids::kMemory);
  t.devices.push_back(std::move(dt));
  fill_stacks(d, t);
  return t;
}

void TraceRecorder::fill_stacks(const Device& d, Trace& t) const {
  DeviceTrace& dt = t.devices.front();
  dt.block_stacks.clear();
  if (d.serial_stacks.empty()) return;
  dt.block_stacks.assign(dt.block_count, kNoStack);
  for (uint32_t id = 0; id < dt.block_count && id < d.memory_serials.size(); ++id)
    if (auto s = d.serial_stacks.find(d.memory_serials[id]); s != d.serial_stacks.end()) dt.block_stacks[id] = s->second;
  t.frames = frames_;
  t.stacks = stacks_;
}

uint64_t TraceRecorder::memory_generation(int device) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = devices_.find(device);
  return it != devices_.end() ? it->second.memory_generation : 0;
}

bool TraceRecorder::add_named_stacks(Trace& recent, uint64_t generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (recent.devices.size() != 1) return false;
  auto it = devices_.find(recent.devices.front().device);
  if (it == devices_.end() || it->second.memory_generation != generation) return false;
  fill_stacks(it->second, recent);
  return true;
}

// --- stacks -----------------------------------------------------------------------

void TraceRecorder::set_stack_namer(std::shared_ptr<StackNamer> namer) {
  std::vector<PendingStack> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    namer_ = std::move(namer);
    if (namer_ == nullptr) dropped.swap(pending_stacks_);
  }
  // `dropped` releases its tokens here, outside the lock.
}

size_t TraceRecorder::pending_stacks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_stacks_.size();
}

uint32_t TraceRecorder::intern_stack(const std::vector<StackFrame>& frames) {
  std::vector<uint32_t> ids;
  ids.reserve(frames.size());
  for (const StackFrame& f : frames) {
    auto [it, added] = frame_ids_.try_emplace(std::tuple(f.filename, f.name, f.line), uint32_t(frames_.size()));
    if (added) frames_.push_back(Frame{f.filename, f.name, f.line});
    ids.push_back(it->second);
  }
  auto [it, added] = stack_ids_.try_emplace(ids, uint32_t(stacks_.size()));
  if (added) stacks_.push_back(std::move(ids));
  return it->second;
}

void TraceRecorder::write_block_stack(int device, uint32_t file_id, uint32_t stack) {
  write([&](HbtWriter& w) {
    for (; frames_in_file_ < frames_.size(); ++frames_in_file_) w.frame(frames_[frames_in_file_]);
    for (; stacks_in_file_ <= stack; ++stacks_in_file_) w.stack(stacks_[stacks_in_file_]);
    w.block_stack(device, file_id, stack);
  });
}

size_t TraceRecorder::name_stacks() {
  std::vector<PendingStack> batch;
  std::shared_ptr<StackNamer> namer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(pending_stacks_);
    namer = namer_;
  }
  if (batch.empty() || namer == nullptr) return 0;
  std::vector<StackToken> tokens;
  tokens.reserve(batch.size());
  for (PendingStack& p : batch) tokens.push_back(std::move(p.token));
  std::vector<std::vector<StackFrame>> named;
  try {
    named = namer->name(tokens);
    if (named.size() != tokens.size())
      throw std::runtime_error("the stack namer named " + std::to_string(named.size()) + " stacks of " +
                               std::to_string(tokens.size()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hbmalloc: %zu allocation stacks lost: %s\n", tokens.size(), e.what());
    return 0;
  }
  tokens.clear();  // released before the lock is taken: releasing may call back into the caller's runtime
  size_t given = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < batch.size(); ++i) {
    if (named[i].empty()) continue;
    const PendingStack& p = batch[i];
    auto dev = devices_.find(p.device);
    if (dev == devices_.end()) continue;
    Device& d = dev->second;
    const uint32_t stack = intern_stack(named[i]);
    ++given;
    if (options_.memory_events > 0) d.serial_stacks[p.serial] = stack;
    uint32_t file_id = p.file_number == file_number_ ? p.file_id : kNoBlock;
    if (auto it = d.live.find(p.ptr); it != d.live.end() && it->second.serial == p.serial) {
      it->second.stack = stack;  // a file started later lists it among its live blocks
      file_id = it->second.file_id;
    }
    if (writer_ && d.in_file && file_id != kNoBlock) write_block_stack(p.device, file_id, stack);
  }
  return given;
}

}  // namespace hbmalloc::trace

// --- the public handle ------------------------------------------------------------

namespace hbmalloc {

Recorder::Recorder(const RecorderOptions& options)
    : options_(options),
      engine_(std::make_unique<trace::TraceRecorder>(trace::TraceRecorder::Options{
          options.path, options.oom_dump_dir.empty() ? 0 : std::max<size_t>(options.oom_dump_events, 2), 1024})) {}

Recorder::~Recorder() = default;

void Recorder::start_file(const std::string& path) { engine_->start_file(path); }
void Recorder::stop_file() { engine_->stop_file(); }
void Recorder::set_stack_namer(std::shared_ptr<StackNamer> namer) { engine_->set_stack_namer(std::move(namer)); }
size_t Recorder::name_stacks() { return engine_->name_stacks(); }
size_t Recorder::pending_stacks() const { return engine_->pending_stacks(); }

}  // namespace hbmalloc

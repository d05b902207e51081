#include "replay/replay.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "backend/sim_backend.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"
#include "policy/policy_catalog.h"
#include "replay/fidelity.h"
#include "replay/recorded_addresses.h"
#include "replay_hooks.h"

namespace hbmalloc::replay {
namespace {

using trace::Action;
using trace::DeviceTrace;
using trace::Event;

constexpr uint64_t kCapacityStep = 2ull << 20;

enum class BlockState : uint8_t { kUnborn, kLive, kFailed, kFreed };

bool records_empty_cache(const DeviceTrace& d) {
  return std::any_of(d.events.begin(), d.events.end(),
                     [](const Event& e) { return e.action == Action::kEmptyCache; });
}

// One pass over a device's events. `stop_at` ends the pass after that event
// (used to capture the layout at the peak found by an earlier pass).
class Run {
 public:
  Run(const trace::Trace& t, const DeviceTrace& d, const ReplayOptions& o)
      : trace_(t), d_(d), o_(o), ptrs_(d.block_count, nullptr), state_(d.block_count, BlockState::kUnborn) {
    // The trace's clock, for the policy's time budget and the sim's work lag
    // (read only with either); none when the trace has no times.
    if (o.config.vmm.budget() >= 0 || o.config.sim_lag_us > 0)
      for (const Event& e : d.events)
        if (e.time_us != 0 && e.time_us != d.events.front().time_us) {
          timed_ = true;
          break;
        }
    fresh_allocator();
  }

  // `figures`, when given, is told every event of the trace (those past an
  // early stop too), so the replay reads the events once.
  void execute(ReplayResult& r, uint64_t stop_at = UINT64_MAX, std::vector<SegmentEvent>* log = nullptr,
               trace::FiguresTally* figures = nullptr) {
    const bool sample = o_.timeline_points > 0;
    // The layout at the peak is captured by a second pass, which needs the
    // event at which the peak was first reached.
    const bool watch_peak = sample || o_.capture_layouts;
    const uint64_t n = d_.events.size();
    const uint64_t bucket = sample ? std::max<uint64_t>(1, (n + o_.timeline_points - 1) / o_.timeline_points) : 0;
    TimelinePoint point;
    uint64_t running_peak = 0;

    // Segment events while addresses are logged.
    const auto placed = o_.addresses != nullptr ? std::make_shared<SegmentLog>() : nullptr;
    size_t placed_seen = 0;
    if (placed != nullptr) {
      o_.addresses->block_addr.assign(d_.block_count, 0);
      allocator_->add_observer(placed);
    }
    start(r);
    const auto logged = log != nullptr ? std::make_shared<SegmentLog>() : nullptr;
    if (logged != nullptr) allocator_->add_observer(logged);
    const auto take_placed = [&](uint64_t event) {
      for (; placed_seen < placed->events.size(); ++placed_seen)
        o_.addresses->segment_events.emplace_back(event, placed->events[placed_seen]);
    };
    if (o_.addresses != nullptr) take_placed(UINT64_MAX);
    if (watch_peak) running_peak = allocator_->usage().reserved;

    auto start = std::chrono::steady_clock::now();
    uint64_t i = 0;
    for (; i < n && !(o_.stop_at_first_oom && !r.ooms.empty()); ++i) {
      const Event& e = d_.events[i];
      if (figures != nullptr) figures->add(e);
      if (timed_) sim_->set_trace_time(e.time_us);
      switch (e.action) {
        case Action::kAlloc:
          ++r.allocs;
          allocate(r, e.id, e.size, e.stream, i, e.time_us);
          break;
        case Action::kFree:
          ++r.frees;
          release(e, i);
          break;
        case Action::kOom:
          retry_failed_request(r, e, i);
          break;
        case Action::kEmptyCache:
          allocator_->empty_cache();
          ++r.empty_cache_calls;
          break;
        case Action::kSegmentFree:
          if (infers_empty_cache_at(i)) {
            allocator_->empty_cache();
            ++r.empty_cache_calls;
          }
          break;
        default:
          break;
      }
      if (watch_peak) {
        Usage u = allocator_->usage();
        if (u.reserved > running_peak) {
          running_peak = u.reserved;
          r.peak_reserved_event = i;
        }
        if (sample) {
          point.usage.requested = std::max(point.usage.requested, u.requested);
          point.usage.allocated = std::max(point.usage.allocated, u.allocated);
          point.usage.reserved = std::max(point.usage.reserved, u.reserved);
          if ((i + 1) % bucket == 0 || i + 1 == n) {
            point.event = i;
            point.time_us = e.time_us;
            r.timeline.push_back(point);
            point = TimelinePoint{};
          }
        }
      }
      if (o_.addresses != nullptr) take_placed(i);
      if (o_.check_invariants) [[unlikely]]
        allocator_->check_invariants();
      if ((i & 0xffff) == 0xffff && o_.progress) o_.progress(i + 1, n);
      if (i == stop_at) {
        ++i;
        break;
      }
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (placed != nullptr) allocator_->remove_observer(placed.get());
    if (logged != nullptr) {
      allocator_->remove_observer(logged.get());
      *log = std::move(logged->events);
    }
    if (figures != nullptr)
      for (; i < n; ++i) figures->add(d_.events[i]);
  }

  Allocator& allocator() { return *allocator_; }
  // Each live block's address and trace block id, in address order.
  std::vector<std::pair<uint64_t, uint32_t>> live_block_ids() const {
    std::vector<std::pair<uint64_t, uint32_t>> out;
    for (uint32_t id = 0; id < state_.size(); ++id)
      if (state_[id] == BlockState::kLive) out.emplace_back(reinterpret_cast<uintptr_t>(ptrs_[id]), id);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  // A policy that reproduces the recording puts its segments where the
  // recording's went, so best fit breaks ties as the recording did.
  void fresh_allocator() {
    Config config = o_.config;
    config.backend = "sim";
    config.capacity = o_.capacity.value_or(0);
    std::unique_ptr<SimBackend> sim = make_sim_backend(config, 0);
    sim_ = sim.get();
    if (timed_) sim_->set_trace_time(d_.events.front().time_us);
    else sim_->set_trace_time(std::nullopt);
    if (!faithful()) {
      allocator_ = std::make_unique<Allocator>(config, std::move(sim));
      return;
    }
    auto placed = std::make_unique<RecordedAddresses>(std::move(sim));
    std::vector<const trace::SegmentInfo*> start;
    for (const trace::SegmentInfo& seg : d_.segments_at_start) start.push_back(&seg);
    std::sort(start.begin(), start.end(), [](const auto* a, const auto* b) { return a->addr < b->addr; });
    for (const trace::SegmentInfo* seg : start) placed->plan(seg->addr, seg->size);
    for (const Event& e : d_.events)
      if (e.action == Action::kSegmentAlloc) placed->plan(e.addr, e.size);
    allocator_ = std::make_unique<Allocator>(config, std::move(placed));
  }
  bool faithful() const { return policy_named(o_.config.policy).reproduces_recording; }

  // The blocks live at trace start. A policy that reproduces the recording
  // takes the trace's own segments with those blocks at their recorded
  // offsets, so a replay starts where the recording stood; other policies
  // allocate them anew.
  void start(ReplayResult& r) {
    if (faithful() && d_.has_segment_picture) {
      try {
        adopt_picture();
        r.started_from_picture = true;
        return;
      } catch (const Error& e) {
        // A start too large for the device is an OOM; a picture the policy
        // cannot take is not: either way the live blocks are allocated anew.
        if (e.code() == ErrorCode::kOutOfMemory) {
          uint64_t bytes = 0;
          for (const trace::SegmentInfo& s : d_.segments_at_start) bytes += s.size;
          r.ooms.push_back(picture(trace::kNoBlock, bytes, 0, 0, 0, r.ooms.size()));
        } else if (e.code() != ErrorCode::kInvalidArgument) {
          throw;
        }
        r.start_note = e.what();
        state_.assign(state_.size(), BlockState::kUnborn);
        fresh_allocator();
      }
    }
    for (const trace::BlockInfo& b : d_.live_at_start) allocate(r, b.id, b.requested, b.stream, 0, 0);
  }

  void adopt_picture() {
    Layout start;
    for (const trace::SegmentInfo& s : d_.segments_at_start)
      start.push_back({s.addr, s.size, s.small_pool ? Pool::kSmall : Pool::kLarge, s.stream, {}});
    std::sort(start.begin(), start.end(), [](const SegmentLayout& a, const SegmentLayout& b) { return a.addr < b.addr; });
    std::vector<const trace::BlockInfo*> live;
    for (const trace::BlockInfo& b : d_.live_at_start) live.push_back(&b);
    std::sort(live.begin(), live.end(), [](const auto* a, const auto* b) { return a->addr < b->addr; });
    std::vector<std::vector<uint32_t>> ids(start.size());
    for (const trace::BlockInfo* b : live) {
      auto seg = std::upper_bound(start.begin(), start.end(), b->addr,
                                  [](uint64_t addr, const SegmentLayout& s) { return addr < s.addr; });
      if (seg == start.begin() || b->addr >= std::prev(seg)->addr + std::prev(seg)->size)
        throw Error(ErrorCode::kInvalidArgument, "block " + std::to_string(b->id) + " live at start lies in no segment");
      --seg;
      seg->blocks.push_back({b->addr, b->size, b->requested, true});
      ids[size_t(seg - start.begin())].push_back(b->id);
    }
    std::vector<void*> ptrs = ReplayHooks::adopt(*allocator_, start);
    size_t i = 0;
    for (const std::vector<uint32_t>& seg_ids : ids)
      for (uint32_t id : seg_ids) {
        check_id(id, 0);
        ptrs_[id] = ptrs[i++];
        state_[id] = BlockState::kLive;
      }
  }

  // Whether event i (a segment free) ends a run of segment frees that the
  // recording did as an empty_cache(). PyTorch records empty_cache() only this
  // way; its release-and-retry on OOM looks the same, and replaying that as a
  // release too keeps the comparison fair (the native run gave that memory back).
  bool infers_empty_cache_at(uint64_t i) {
    if (!o_.infer_empty_cache) return false;
    if (i + 1 < d_.events.size() && d_.events[i + 1].action == Action::kSegmentFree) return false;
    // Asked only here, so traces without segment frees never pay for the scan.
    if (!records_empty_cache_) records_empty_cache_ = records_empty_cache(d_);
    return !*records_empty_cache_;  // recorded empty_cache events are replayed as such instead
  }

  // A corrupt trace: "<source>: device D event E <what>".
  [[noreturn]] void corrupt(uint64_t event, const std::string& what) const {
    throw Error(ErrorCode::kInvalidArgument, trace_.source + ": device " + std::to_string(d_.device) + " event " +
                                                 std::to_string(event) + " " + what);
  }

  // The allocator refuses a request it cannot model (past 1 PiB) as an
  // invalid argument: in a trace that is the event's fault, so name it.
  void* malloc_for(uint64_t size, uint64_t stream, uint64_t event) {
    try {
      return allocator_->malloc(size, stream);
    } catch (const Error& err) {
      if (err.code() == ErrorCode::kInvalidArgument) corrupt(event, err.what());
      throw;
    }
  }

  void allocate(ReplayResult& r, uint32_t id, uint64_t size, uint64_t stream, uint64_t event, int64_t time_us) {
    check_id(id, event);
    if (state_[id] == BlockState::kLive) corrupt(event, "allocates block " + std::to_string(id) + " that is already live");
    try {
      ptrs_[id] = malloc_for(size, stream, event);
      state_[id] = BlockState::kLive;
      if (o_.addresses != nullptr) o_.addresses->block_addr[id] = reinterpret_cast<uint64_t>(ptrs_[id]);
    } catch (const Error& err) {
      if (err.code() != ErrorCode::kOutOfMemory) throw;
      state_[id] = BlockState::kFailed;
      r.ooms.push_back(picture(id, size, stream, event, time_us, r.ooms.size()));
    }
  }

  // A request the recording allocator could not serve leaves no alloc
  // event, only this. Every policy is asked for it at its place: failing, it
  // is an OOM of this replay; served, it is let go at once, because the
  // recorded program never held it and what follows is what it really did.
  void retry_failed_request(ReplayResult& r, const Event& e, uint64_t event) {
    FailedRequest f{event, e.size, e.stream, e.time_us, false};
    try {
      allocator_->free(malloc_for(e.size, e.stream, event));
      f.served = true;
    } catch (const Error& err) {
      if (err.code() != ErrorCode::kOutOfMemory) throw;
      r.ooms.push_back(picture(trace::kNoBlock, e.size, e.stream, event, e.time_us, r.ooms.size()));
      r.ooms.back().recorded_failure = true;
    }
    r.failed_requests.push_back(f);
  }

  void release(const Event& e, uint64_t event) {
    check_id(e.id, event);
    switch (state_[e.id]) {
      case BlockState::kLive:
        allocator_->free(ptrs_[e.id]);
        ptrs_[e.id] = nullptr;
        state_[e.id] = BlockState::kFreed;
        return;
      case BlockState::kFailed:  // its alloc failed in this replay: nothing to free
        state_[e.id] = BlockState::kFreed;
        return;
      case BlockState::kUnborn:
        corrupt(event, "frees block " + std::to_string(e.id) + " that was never allocated");
      case BlockState::kFreed:
        corrupt(event, "frees block " + std::to_string(e.id) + " that was already freed");
    }
  }

  void check_id(uint32_t id, uint64_t event) const {
    if (id >= ptrs_.size())
      corrupt(event, "names block " + std::to_string(id) + " outside the trace's " + std::to_string(ptrs_.size()) +
                         " blocks");
  }

  // `earlier`: the OOMs before this one.
  OomRecord picture(uint32_t id, uint64_t size, uint64_t stream, uint64_t event, int64_t time_us,
                    size_t earlier) const {
    OomRecord o;
    o.event = event;
    o.block = id;
    o.size = size;
    o.stream = stream;
    o.time_us = time_us;
    Stats s = allocator_->stats();
    o.usage = {uint64_t(s.requested_bytes.all.current), uint64_t(s.allocated_bytes.all.current),
               uint64_t(s.reserved_bytes.all.current)};
    o.cached_free = o.usage.reserved - o.usage.allocated;
    o.largest_free_block = uint64_t(s.largest_free_block);
    o.capacity = o_.capacity.value_or(0);
    if (o_.capture_layouts && earlier < o_.oom_layouts) {
      o.layout = allocator_->layout();
      o.block_ids = live_block_ids();
    }
    return o;
  }

  const trace::Trace& trace_;
  const DeviceTrace& d_;
  const ReplayOptions& o_;
  std::unique_ptr<Allocator> allocator_;
  SimBackend* sim_ = nullptr;  // the allocator's, for the trace's clock
  bool timed_ = false;         // the device's events carry times
  std::vector<void*> ptrs_;
  std::vector<BlockState> state_;
  std::optional<bool> records_empty_cache_;  // whether the trace records empty_cache itself
};

}  // namespace

ReplayResult replay(const trace::Trace& trace, const ReplayOptions& options) {
  const DeviceTrace& d = trace.device_or_error(options.device);
  ReplayResult r;
  r.device = d.device;
  r.events = d.events.size();
  r.capacity = options.capacity.value_or(0);

  // The replay's own segment events, when options.fidelity.
  std::vector<SegmentEvent> replayed;
  Run run(trace, d, options);
  trace::FiguresTally figures(d);
  run.execute(r, UINT64_MAX, options.fidelity ? &replayed : nullptr, &figures);
  r.native = figures.finish();
  if (options.fidelity) {
    const std::vector<SegmentEvent> recorded = recorded_segment_events(d);
    if (!recorded.empty()) r.fidelity = compare_segment_events(recorded, replayed);
  }

  Stats s = run.allocator().stats();
  r.final_stats = s;
  r.peak_requested = uint64_t(s.requested_bytes.all.peak);
  r.peak_allocated = uint64_t(s.allocated_bytes.all.peak);
  r.peak_reserved = uint64_t(s.reserved_bytes.all.peak);
  r.efficiency = r.peak_reserved > 0 ? double(r.peak_requested) / double(r.peak_reserved) : 0.0;
  r.events_per_second = r.seconds > 0 ? double(r.events) / r.seconds : 0.0;

  // The peak is known only at the end; a second pass that stops there captures it.
  if (options.capture_layouts && r.peak_reserved > 0) {
    ReplayOptions again = options;
    again.timeline_points = 0;
    again.capture_layouts = false;
    again.fidelity = false;
    again.addresses = nullptr;
    ReplayResult scratch;
    Run second(trace, d, again);
    second.execute(scratch, r.peak_reserved_event);
    r.layout_at_peak = second.allocator().layout();
    r.peak_block_ids = second.live_block_ids();
  }
  return r;
}

void as_recorded(const trace::Trace& trace, ReplayOptions& options) {
  Config& config = options.config;
  const PolicyDescription& policy = policy_named(config.policy);
  if (policy.reads_pytorch_settings) {
    config.pytorch_settings = cca::overlay(cca::settings_of_trace(trace.settings), config.pytorch_settings);
    cca::parse_settings(config.pytorch_settings);
  }
  if (policy.reproduces_recording && !options.capacity)
    options.capacity = recorded_capacity(trace, trace.device_or_error(options.device));
}

std::optional<uint64_t> recorded_capacity(const trace::Trace& trace, const trace::DeviceTrace& d) {
  if (trace.capacity) return trace.capacity;
  return trace::figures_of(d).native_capacity;
}

std::optional<uint64_t> min_capacity(const trace::Trace& trace, const ReplayOptions& options) {
  ReplayOptions probe = options;
  probe.timeline_points = 0;
  probe.capture_layouts = false;
  probe.stop_at_first_oom = true;
  probe.fidelity = false;
  probe.addresses = nullptr;
  probe.progress = nullptr;  // progress is reported per bisection step below
  auto fits = [&](uint64_t capacity) {
    probe.capacity = capacity;
    return replay(trace, probe).ooms.empty();
  };

  ReplayOptions unlimited = probe;
  unlimited.capacity.reset();
  ReplayResult free_run = replay(trace, unlimited);
  if (!free_run.ooms.empty()) return std::nullopt;
  // Unlimited, the replay never failed: its own peak is an upper bound that fits.
  uint64_t hi = (free_run.peak_reserved + kCapacityStep - 1) / kCapacityStep;
  // Below the live bytes nothing fits; at exactly them something may.
  uint64_t lo = free_run.peak_requested > 0 ? (free_run.peak_requested - 1) / kCapacityStep : 0;
  if (hi == 0) return 0;
  // The sim models no device past 1 PiB: where only a larger one would do
  // (an unlimited run reserving more), none does.
  if (const uint64_t top = kMaxDeviceBytes / kCapacityStep; hi > top) {
    if (!fits(top * kCapacityStep)) return std::nullopt;
    hi = top;
  }
  // Bisection assumes fitting is monotone in capacity, which holds for a
  // policy that only ever gains from more room.
  uint64_t steps = 0, total = 1;
  while ((uint64_t(1) << total) < hi - lo) ++total;
  while (lo + 1 < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (fits(mid * kCapacityStep))
      hi = mid;
    else
      lo = mid;
    if (options.progress) options.progress(++steps, total);
  }
  return hi * kCapacityStep;
}

}  // namespace hbmalloc::replay

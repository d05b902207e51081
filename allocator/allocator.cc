// The per-device Allocator: the lock, block-level accounting, cross-stream
// frees, the out-of-memory path (release the cache, retry, fail cleanly, dump
// when asked) and the hooks of an attached recorder. Where a block lands is
// the policy's business; segment-level statistics are kept by the policy's
// SegmentSource, segment events reach the recorder through RecordingBackend.
#include "hbmalloc/allocator.hpp"

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "backend/backend.h"
#include "core/helpers.h"
#include "core/spin_lock.h"
#include "hbmalloc/recorder.hpp"
#include "policy/policy.h"
#include "private_pools.h"
#include "record/oom_dump.h"
#include "record/recorder.h"
#include "record/recording_backend.h"

namespace hbmalloc {

namespace {

// Largest request we accept: far above any device, far below overflow.
constexpr uint64_t kMaxRequest = kMaxDeviceBytes;

uint64_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

}  // namespace

struct Allocator::Impl {
  Config config;
  // Outlives the policy and backend, which report to it until they are gone.
  std::shared_ptr<Recorder> recorder_owner;
  // Set while a recorder is attached (under mu): the one branch per operation.
  trace::TraceRecorder* recorder = nullptr;
  std::unique_ptr<trace::RecordingBackend> backend;
  const int device;
  LiveStats stats;
  std::unique_ptr<Policy> policy;
  PrivatePools pools;
  mutable SpinLock mu;

  // Streams other than its own that a live block is used on (record_stream).
  absl::btree_map<void*, std::vector<StreamId>> stream_uses;
  // Blocks freed while other streams may still use them: they return to the
  // policy once every event is done.
  struct PendingFree {
    LiveBlock block;
    std::vector<EventId> events;
    PrivatePool* pool = nullptr;  // nullptr: the default policy's block
  };
  absl::btree_map<void*, PendingFree> pending;
#ifndef NDEBUG
  // Debug builds walk every structure now and then, so a broken invariant
  // surfaces near the operation that broke it.
  uint64_t ops_since_check = 0;
  void debug_check() {
    if (++ops_since_check % 1024 == 0) check();
  }
#else
  void debug_check() {}
#endif

  Impl(const Config& c, std::unique_ptr<Backend> b)
      : config(c),
        backend(std::make_unique<trace::RecordingBackend>(std::move(b))),
        device(backend->device()),
        pools(config, *backend, stats) {
    policy = make_policy(config, *backend, stats);
    apply_fraction(config.memory_fraction);
  }
  ~Impl() {
    if (recorder != nullptr) recorder->detach(device);
  }

  void apply_fraction(double fraction) {
    uint64_t capacity = backend->capacity();
    uint64_t limit = capacity == 0 ? UINT64_MAX : uint64_t(double(capacity) * fraction);
    policy->set_limit(limit);
    pools.set_limit(limit);
    stats.memory_limit = capacity == 0 ? 0 : int64_t(limit);
  }

  void count_alloc(const Allocation& a, uint64_t requested) {
    stats.allocation.increase(a.pool, 1);
    stats.allocated_bytes.increase(a.pool, int64_t(a.allocated));
    stats.active.increase(a.pool, 1);
    stats.active_bytes.increase(a.pool, int64_t(a.allocated));
    stats.requested_bytes.increase(a.pool, int64_t(requested));
  }
  // A free has two moments, as in PyTorch: the caller lets go (allocation
  // ends) and the memory becomes reusable (activity ends).
  void count_release(const LiveBlock& b) {
    stats.allocation.decrease(b.pool, 1);
    stats.allocated_bytes.decrease(b.pool, int64_t(b.allocated));
  }
  void count_inactive(const LiveBlock& b) {
    stats.active.decrease(b.pool, 1);
    stats.active_bytes.decrease(b.pool, int64_t(b.allocated));
    stats.requested_bytes.decrease(b.pool, int64_t(b.requested));
  }

  // Returns to the policy every pending block whose events are all done.
  void drain_pending() {
    for (auto it = pending.begin(); it != pending.end();) {
      auto& [ptr, p] = *it;
      bool done = true;
      for (EventId e : p.events) done = done && backend->event_done(e);
      if (!done) {
        ++it;
        continue;
      }
      for (EventId e : p.events) backend->release_event(e);
      LiveBlock b;
      policy_of(p.pool).free(ptr, -1, b);
      count_inactive(b);
      if (p.pool != nullptr) pools.returned(*p.pool);
      if (recorder != nullptr) [[unlikely]] recorder->free_completed(device, address(ptr));
      it = pending.erase(it);
    }
  }
  Policy& policy_of(PrivatePool* pool) { return pool != nullptr ? *pool->policy : *policy; }
  // The pool an allocation on `stream` goes to (nullptr: the default policy).
  PrivatePool* route(StreamId stream) { return pools.routing() ? pools.route(stream) : nullptr; }
  // Finds the live block at ptr in the default policy or a private pool.
  bool find(void* ptr, LiveBlock& out, PrivatePool*& pool) {
    pool = nullptr;
    if (policy->find(ptr, out)) return true;
    if (pools.empty()) return false;
    pool = pools.owner(ptr, out);
    return pool != nullptr;
  }
  // Everything cached goes back to the backend, except what private pools in
  // use hold (a captured graph still addresses it).
  void release_cached() {
    policy->release_cached();
    pools.release_unused();
  }
  Layout full_layout() const {
    Layout layout = policy->layout();
    if (!pools.empty()) {
      pools.add_to(layout);
      std::sort(layout.begin(), layout.end(),
                [](const SegmentLayout& a, const SegmentLayout& b) { return a.addr < b.addr; });
    }
    return layout;
  }

  void sync_and_drain() {
    if (pending.empty()) return;
    backend->synchronize();
    ++stats.num_sync_all_streams;
    drain_pending();
  }

  void* malloc(uint64_t size, StreamId stream) {
    if (size == 0) return nullptr;
    if (size > kMaxRequest)
      throw Error(ErrorCode::kInvalidArgument, "request of " + std::to_string(size) +
                                                   " bytes is more than the largest device hbmalloc models (1 PiB)");
    {
      std::lock_guard<SpinLock> lock(mu);
      if (!pending.empty() && !pools.routing()) drain_pending();
      PrivatePool* pool = route(stream);
      Allocation a = policy_of(pool).allocate(size, stream);
      if (a.ptr != nullptr) [[likely]] return handed_out(a, size, stream, pool);
    }
    return malloc_after_release(size, stream);
  }

  void* handed_out(const Allocation& a, uint64_t size, StreamId stream, PrivatePool* pool) {
    count_alloc(a, size);
    if (pool != nullptr) pools.handed_out(*pool);
    if (recorder != nullptr) [[unlikely]]
      recorder->alloc(device, address(a.ptr), size, a.allocated, a.pool == Pool::kSmall, stream);
    debug_check();
    return a.ptr;
  }

  // Slow path: everything cached goes back to the device, then one more try.
  // A failure throws; the OOM dump is written after the lock is let go, from
  // what was copied under it.
  // While a graph is being captured (a pool is routed to) nothing here may
  // query events, synchronize or free device memory: CUDA forbids it during
  // capture, so pending frees wait for the capture to end, and an allocation
  // that does not fit fails at once, as in PyTorch.
  void* malloc_after_release(uint64_t size, StreamId stream) {
    std::string message;
    std::optional<trace::Trace> recent;
    trace::OomFacts facts;
    std::string dump_dir;
    {
      std::lock_guard<SpinLock> lock(mu);
      if (!pools.routing()) {  // no pool is routed to: the retry is the default policy's
        sync_and_drain();
        release_cached();
        ++stats.num_alloc_retries;
        Allocation a = policy->allocate_after_release(size, stream);
        if (a.ptr != nullptr) return handed_out(a, size, stream, nullptr);
      }
      ++stats.num_ooms;
      message = oom_message(size);
      if (recorder != nullptr) {
        recorder->oom(device, size, device_free());
        dump_dir = recorder_owner->options().oom_dump_dir;
        if (!dump_dir.empty()) {
          recent = recorder->recent(device);
          facts = trace::OomFacts{device,         std::string(backend->name()), size, stream, backend->capacity(),
                                  stats_now(),    full_layout()};
        }
      }
    }
    if (recent) message += dump_note(dump_dir, std::move(*recent), facts);
    throw Error(ErrorCode::kOutOfMemory, message);
  }

  std::string oom_message(uint64_t size) const {
    uint64_t capacity = backend->capacity();
    return "tried to allocate " + format_bytes(size) + " on device " + std::to_string(device) + " (" +
           std::string(backend->name()) + "): " + format_bytes(uint64_t(stats.reserved_bytes.current_all())) +
           " reserved, " + format_bytes(uint64_t(stats.allocated_bytes.current_all())) + " allocated, " +
           format_bytes(policy->largest_free_block()) + " largest free block, limit " +
           (stats.memory_limit ? format_bytes(uint64_t(stats.memory_limit)) : std::string("none")) + ", capacity " +
           (capacity ? format_bytes(capacity) : std::string("unlimited"));
  }

  // What the device had left, as far as hbmalloc knows (0: unknown).
  uint64_t device_free() const {
    const uint64_t capacity = backend->capacity();
    const uint64_t reserved = uint64_t(stats.reserved_bytes.current_all());
    return capacity > reserved ? capacity - reserved : 0;
  }

  // Never throws: a failed dump is told in the error text instead.
  static std::string dump_note(const std::string& dir, trace::Trace recent, const trace::OomFacts& facts) noexcept {
    try {
      trace::OomDumpFiles files = trace::write_oom_dump(dir, std::move(recent), facts);
      return "; OOM dump: trace " + files.trace + ", summary " + files.summary;
    } catch (const std::exception& e) {
      return std::string("; OOM dump failed: ") + e.what();
    } catch (...) {
      return "; OOM dump failed";
    }
  }

  void free(void* ptr, int64_t expected_size) {
    if (ptr == nullptr) return;
    if (expected_size < -1)
      throw Error(ErrorCode::kInvalidArgument, "free of " + hex(ptr) + " with negative size " + std::to_string(expected_size));
    std::lock_guard<SpinLock> lock(mu);
    if (!pending.empty() && pending.contains(ptr))
      throw Error(ErrorCode::kDoubleFree, hex(ptr) + " was already freed (its stream uses are still pending)");
    if (!stream_uses.empty()) {
      auto it = stream_uses.find(ptr);
      if (it != stream_uses.end()) return free_used_elsewhere(ptr, expected_size, it);
    }
    LiveBlock b;
    FreeStatus status = policy->free(ptr, expected_size, b);
    PrivatePool* pool = nullptr;
    if (status == FreeStatus::kNotLive && !pools.empty()) [[unlikely]] status = pools.free(ptr, expected_size, b, pool);
    if (status != FreeStatus::kOk) bad_free(ptr, expected_size, status, b);
    count_release(b);
    count_inactive(b);
    if (pool != nullptr) pools.returned(*pool);
    if (recorder != nullptr) [[unlikely]] recorder->free(device, address(ptr));
    debug_check();
  }

  void free_used_elsewhere(void* ptr, int64_t expected_size,
                           absl::btree_map<void*, std::vector<StreamId>>::iterator it) {
    LiveBlock b;
    PrivatePool* pool = nullptr;
    if (!find(ptr, b, pool)) bad_free(ptr, expected_size, FreeStatus::kNotLive, b);
    if (expected_size >= 0 && uint64_t(expected_size) != b.requested)
      bad_free(ptr, expected_size, FreeStatus::kSizeMismatch, b);
    PendingFree p{b, {}, pool};
    for (StreamId s : it->second) p.events.push_back(backend->record_event(s));
    stream_uses.erase(it);
    count_release(b);
    pending.emplace(ptr, std::move(p));
    if (recorder != nullptr) [[unlikely]] recorder->free_requested(device, address(ptr));
    if (!pools.routing()) drain_pending();  // events on idle streams are done at once
  }

  [[noreturn]] void bad_free(void* ptr, int64_t expected_size, FreeStatus status, const LiveBlock& b) {
    if (status == FreeStatus::kSizeMismatch)
      throw Error(ErrorCode::kSizeMismatch, "free of " + hex(ptr) + " with size " + std::to_string(expected_size) +
                                                " but it was allocated with size " + std::to_string(b.requested));
    ErrorCode code = policy->classify_bad_pointer(ptr);
    if (code != ErrorCode::kDoubleFree && !pools.empty()) code = pools.classify_bad_pointer(ptr);
    if (code == ErrorCode::kDoubleFree) throw Error(code, hex(ptr) + " was already freed");
    throw Error(code, hex(ptr) + " was not returned by hbmalloc on device " + std::to_string(backend->device()));
  }

  void record_stream(void* ptr, StreamId stream) {
    if (ptr == nullptr) return;
    std::lock_guard<SpinLock> lock(mu);
    LiveBlock b;
    PrivatePool* pool = nullptr;
    if (!find(ptr, b, pool) || pending.contains(ptr))
      throw Error(ErrorCode::kUnknownPointer, "record_stream on " + hex(ptr) + ", which is not a live hbmalloc block");
    if (recorder != nullptr) [[unlikely]] recorder->record_stream(device, address(ptr), stream);
    if (stream == b.stream) return;  // its own stream orders its uses already
    std::vector<StreamId>& uses = stream_uses[ptr];
    for (StreamId s : uses)
      if (s == stream) return;
    uses.push_back(stream);
  }

  // Statistics with hbmalloc's own figures filled in (under mu).
  Stats stats_now() const {
    Stats s = stats.snapshot();
    // Over the private pools too, as the cached free bytes below count theirs.
    s.largest_free_block = int64_t(std::max(policy->largest_free_block(), pools.largest_free_block()));
    int64_t cached_free = s.reserved_bytes.all.current - s.allocated_bytes.all.current;
    s.external_fragmentation = cached_free > 0 ? 1.0 - double(s.largest_free_block) / double(cached_free) : 0.0;
    if (s.external_fragmentation < 0) s.external_fragmentation = 0;
    return s;
  }

  // Hands `r` what this allocator holds now (its starting picture), then
  // points the hooks at it; a refused attach changes nothing (under mu).
  void attach(std::shared_ptr<Recorder> r) {
    if (r != nullptr) {
      trace::DeviceSetup setup;
      setup.device = device;
      if (uint64_t capacity = backend->capacity()) setup.capacity = capacity;
      setup.settings = config.items();
      for (const SegmentLayout& seg : full_layout()) {
        setup.segments.push_back(
            trace::SegmentInfo{seg.addr, seg.size, seg.stream, seg.pool == Pool::kSmall, seg.expandable, {}});
        for (const BlockLayout& b : seg.blocks) {
          if (!b.allocated) continue;
          const bool waiting = pending.contains(reinterpret_cast<void*>(b.addr));
          setup.live.push_back(trace::BlockInfo{trace::kNoBlock, b.addr, b.size, b.requested, seg.stream,
                                                waiting ? trace::BlockState::kActivePendingFree
                                                        : trace::BlockState::kActiveAllocated});
        }
      }
      r->engine().attach(setup);
    }
    if (recorder != nullptr) recorder->detach(device);
    recorder_owner = std::move(r);
    recorder = recorder_owner ? &recorder_owner->engine() : nullptr;
    backend->set_recorder(recorder);
  }

  void check() const {
    Tally t = policy->check();
    pools.add_to(t);
    const Stats stats = this->stats.snapshot();
    auto fail = [](const std::string& what) { throw Error(ErrorCode::kInvariant, what); };
    for (Pool pool : {Pool::kSmall, Pool::kLarge}) {
      const PoolTally& pt = t.of(pool);
      int64_t pending_n = 0, pending_bytes = 0;
      for (const auto& [ptr, p] : pending)
        if (p.block.pool == pool) ++pending_n, pending_bytes += int64_t(p.block.allocated);
      const char* name = pool == Pool::kSmall ? "small_pool" : "large_pool";
      auto expect = [&](const char* stat, int64_t kept, int64_t held) {
        if (kept != held)
          fail(std::string(stat) + "." + name + ".current is " + std::to_string(kept) + " but the structures hold " +
               std::to_string(held));
      };
      expect("segment", stats.segment.of(pool).current, pt.segments);
      expect("reserved_bytes", stats.reserved_bytes.of(pool).current, pt.reserved);
      expect("active", stats.active.of(pool).current, pt.blocks);
      expect("active_bytes", stats.active_bytes.of(pool).current, pt.allocated_bytes);
      expect("requested_bytes", stats.requested_bytes.of(pool).current, pt.requested_bytes);
      expect("allocation", stats.allocation.of(pool).current, pt.blocks - pending_n);
      expect("allocated_bytes", stats.allocated_bytes.of(pool).current, pt.allocated_bytes - pending_bytes);
      expect("inactive_split", stats.inactive_split.of(pool).current, pt.inactive_split);
      expect("inactive_split_bytes", stats.inactive_split_bytes.of(pool).current, pt.inactive_split_bytes);
    }
    const std::pair<const char*, const StatArray*> arrays[] = {
        {"allocation", &stats.allocation},         {"segment", &stats.segment},
        {"active", &stats.active},                 {"inactive_split", &stats.inactive_split},
        {"allocated_bytes", &stats.allocated_bytes}, {"reserved_bytes", &stats.reserved_bytes},
        {"active_bytes", &stats.active_bytes},     {"inactive_split_bytes", &stats.inactive_split_bytes},
        {"requested_bytes", &stats.requested_bytes}};
    for (auto [name, a] : arrays) {
      for (const StatCounter* c : {&a->all, &a->small_pool, &a->large_pool}) {
        if (c->peak < c->current || c->current < 0 || c->current != c->allocated - c->freed)
          fail(std::string(name) + ": counter inconsistent (current " + std::to_string(c->current) + ", peak " +
               std::to_string(c->peak) + ")");
      }
      if (a->all.current != a->small_pool.current + a->large_pool.current)
        fail(std::string(name) + ".all.current is not small_pool + large_pool");
    }
    // Everything reserved came from the device as a plain segment or a granule.
    const int64_t granules_held = stats.vmm.create - stats.vmm.release;
    const int64_t from_device = stats.device_alloc_bytes - stats.device_free_bytes +
                                granules_held * int64_t(backend->vmm_granularity());
    if (from_device != stats.reserved_bytes.all.current)
      fail("reserved_bytes.all.current is " + std::to_string(stats.reserved_bytes.all.current) +
           " but the device calls hold " + std::to_string(from_device));
  }
};

Allocator::Allocator(const Config& config, int device)
    : impl_(std::make_unique<Impl>(config, make_backend(config, device))) {}
Allocator::Allocator(const Config& config, std::unique_ptr<Backend> backend)
    : impl_(std::make_unique<Impl>(config, std::move(backend))) {}
Allocator::~Allocator() = default;

void* Allocator::malloc(uint64_t size, StreamId stream) { return impl_->malloc(size, stream); }
void Allocator::free(void* ptr, int64_t expected_size) { impl_->free(ptr, expected_size); }
void Allocator::record_stream(void* ptr, StreamId stream) { impl_->record_stream(ptr, stream); }

void Allocator::empty_cache() {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->sync_and_drain();
  // After the drained frees and before the segments go, so a replay of the
  // trace empties the same cache.
  if (impl_->recorder != nullptr) impl_->recorder->empty_cache(impl_->device);
  impl_->release_cached();
}

void Allocator::set_memory_fraction(double fraction) {
  if (!(fraction > 0.0 && fraction <= 1.0))
    throw Error(ErrorCode::kInvalidArgument, "memory fraction " + std::to_string(fraction) + " is not in (0, 1]");
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->apply_fraction(fraction);
}

void Allocator::create_pool(PoolId pool) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->pools.add_use(pool);
}

void Allocator::begin_allocate_to_pool(PoolId pool, std::function<bool(StreamId)> route) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->pools.begin_routing(pool, std::move(route));
  impl_->policy->set_capturing(true);
}

void Allocator::end_allocate_to_pool(PoolId pool) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->pools.end_routing(pool);
  impl_->policy->set_capturing(impl_->pools.routing());
}

void Allocator::release_pool(PoolId pool) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->pools.release(pool);
}

int Allocator::pool_use_count(PoolId pool) const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  return impl_->pools.use_count(pool);
}

Stats Allocator::stats() const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  return impl_->stats_now();
}

bool Allocator::owns(const void* ptr) const noexcept {
  void* p = const_cast<void*>(ptr);
  std::lock_guard<SpinLock> lock(impl_->mu);
  LiveBlock b;
  PrivatePool* pool = nullptr;
  return p != nullptr && (impl_->find(p, b, pool) || impl_->pending.contains(p));
}

void Allocator::enable_peer_access(int peer) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->backend->grant_peer(peer);
}

Usage Allocator::usage() const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  const LiveStats& st = impl_->stats;
  return Usage{uint64_t(st.requested_bytes.current_all()), uint64_t(st.allocated_bytes.current_all()),
               uint64_t(st.reserved_bytes.current_all())};
}

void Allocator::reset_peak_stats() {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->stats.reset_peak();
}

void Allocator::check_invariants() const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->check();
}

Layout Allocator::layout() const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  return impl_->full_layout();
}

std::vector<void*> Allocator::adopt(const Layout& start) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  if (impl_->stats.segment.current_all() != 0 || impl_->stats.reserved_bytes.current_all() != 0)
    throw Error(ErrorCode::kInvalidArgument, "adopt: the allocator holds memory already");
  std::vector<Allocation> live = impl_->policy->adopt(start);
  std::vector<void*> ptrs;
  ptrs.reserve(live.size());
  size_t i = 0;
  for (const SegmentLayout& seg : start)
    for (const BlockLayout& b : seg.blocks) {
      impl_->count_alloc(live[i], b.requested);
      ptrs.push_back(live[i++].ptr);
    }
  return ptrs;
}

void Allocator::log_segment_events(std::vector<SegmentEvent>* log) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->policy->set_segment_log(log);
}

void Allocator::attach_recorder(std::shared_ptr<Recorder> recorder) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->attach(std::move(recorder));
}

int Allocator::device() const { return impl_->device; }
const Config& Allocator::config() const { return impl_->config; }

}  // namespace hbmalloc

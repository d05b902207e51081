// The state of one device's Allocator, shared by the files that implement
// it along its concerns: allocator.cc (the lock, malloc and free, counting,
// the observers), cross_stream_frees.cc (blocks used on other streams),
// out_of_memory.cc (release, retry, fail, dump) and invariants.cc (the check
// that the structures and the statistics agree).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "backend/backend.h"
#include "backend/observed_backend.h"
#include "core/live_stats.h"
#include "core/spin_lock.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/observer.hpp"
#include "policy/policy.h"
#include "private_pools.h"

namespace hbmalloc {

inline uint64_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

struct Allocator::Impl {
  Config config;
  // Who watches (under mu); empty is the one branch per operation. Declared
  // before the backend, which tells them of segments.
  ObservedBackend::Observers observers;
  // !observers.empty(), kept beside it: the hot path's one byte to test.
  bool observed = false;
  std::shared_ptr<AllocatorObserver> recording;  // the attached Recorder's, among observers
  std::unique_ptr<ObservedBackend> backend;
  const int device;
  LiveStats stats;
  std::unique_ptr<Policy> policy;
  PrivatePools pools;
  mutable SpinLock mu;

  // Streams other than its own that a live block is used on (record_stream).
  using StreamUses = absl::btree_map<void*, std::vector<StreamId>>;
  StreamUses stream_uses;
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

  Impl(const Config& c, std::unique_ptr<Backend> b);
  ~Impl();

  // --- allocator.cc ---
  void* malloc(uint64_t size, StreamId stream);
  void* handed_out(const Allocation& a, uint64_t size, StreamId stream, PrivatePool* pool);
  void free(void* ptr, int64_t expected_size);
  [[noreturn]] void bad_free(void* ptr, int64_t expected_size, FreeStatus status, const LiveBlock& b);
  // Statistics with hbmalloc's own figures filled in (under mu).
  Stats stats_now() const;
  // Tells `o` what this allocator holds now, then adds it; an observer that
  // refuses (throws) is not added. Adding one already there does nothing.
  void add_observer(std::shared_ptr<AllocatorObserver> o);
  // Removes `o` (when there), telling it it is detached.
  void remove_observer(const AllocatorObserver* o);
  template <typename F>
  void tell(F&& f) {
    for (const auto& o : observers) f(*o);
  }

  // --- cross_stream_frees.cc ---
  void record_stream(void* ptr, StreamId stream);
  // A free of a block used on other streams: it waits for their work.
  void free_used_elsewhere(void* ptr, int64_t expected_size, StreamUses::iterator it);
  // Returns to the policy every pending block whose events are all done.
  void drain_pending();
  // Waits for the device, then returns every pending block.
  void sync_and_drain();

  // --- out_of_memory.cc ---
  // Slow path of malloc: release the cache, retry, fail with a dump.
  void* malloc_after_release(uint64_t size, StreamId stream);
  std::string oom_message(uint64_t size) const;
  // What the device had left, as far as hbmalloc knows (0: unknown).
  uint64_t device_free() const;

  // --- invariants.cc ---
  // Throws Error(kInvariant) naming the first disagreement found.
  void check() const;

  // --- small helpers, under mu ---
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
};

}  // namespace hbmalloc

// PyTorch's allocation history (torch.cuda.memory._record_memory_history):
// TraceEntry records per device, kept in a ring of bounded size, plus the
// trace trackers torch attaches. While active it observes the device
// allocators (hbmalloc/observer.hpp): allocs, both moments of each free, and
// segments taken, given back, mapped and unmapped, as they happen; the
// extension adds the OOMs and the stacks (a Scope around each call).
#pragma once

#include <c10/cuda/CUDACachingAllocator.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#include "hbmalloc/observer.hpp"

namespace hbmalloc::torch_ext {

namespace CCA = c10::cuda::CUDACachingAllocator;
using TraceEntry = decltype(std::declval<CCA::SnapshotInfo>().device_traces)::value_type::value_type;
using Context = std::shared_ptr<c10::GatheredContext>;

class History final : public AllocatorObserver {
 public:
  // The stack to give the entries of the calls made while it lives, on this
  // thread (the observer is told under the allocator's lock, where no stack
  // may be gathered).
  class Scope {
   public:
    explicit Scope(const Context& context) : saved_(current_) { current_ = &context; }
    ~Scope() { current_ = saved_; }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    const Context* saved_;
  };

  // One branch on the hot path: nothing is recorded or tracked.
  bool active() const { return active_.load(std::memory_order_relaxed); }
  bool recording() const { return recording_; }
  // Context to attach to an alloc (nullptr when stacks are not asked for).
  Context alloc_context() const;
  Context free_context() const;

  void configure(bool enabled, CCA::CreateContextFn gather, size_t max_entries, CCA::RecordContext when,
                 bool clear);
  void add_tracker(CCA::AllocatorTraceTracker tracker);

  void record(int device, typename TraceEntry::Action action, uint64_t addr, uint64_t size, void* stream,
              const Context& context);
  // A copy of every device's entries, indexed by device number.
  std::vector<std::vector<TraceEntry>> entries(int devices) const;
  // The stack of the allocation of the block at ptr, while the history knows it.
  Context allocated_by(int device, uint64_t ptr) const;

  // --- what the allocators tell (AllocatorObserver) ---
  void attached(const ObservedStart& start) override;  // its live blocks, so their frees have sizes
  void detached(int device) override;
  void allocated(int device, uint64_t ptr, uint64_t requested, uint64_t size, Pool pool, StreamId stream) override;
  void free_requested(int device, uint64_t ptr) override;
  void free_completed(int device, uint64_t ptr) override;
  void segment_changed(int device, const SegmentEvent& e) override;

 private:
  void update_active();
  static const Context& current() { return current_ != nullptr ? *current_ : kNoContext; }

  static inline thread_local const Context* current_ = nullptr;
  static inline const Context kNoContext{};

  mutable std::mutex mu_;
  std::atomic<bool> active_{false};
  bool recording_ = false;
  CCA::CreateContextFn gather_ = nullptr;
  CCA::RecordContext when_ = CCA::RecordContext::NEVER;
  size_t max_entries_ = 0;
  std::map<int, std::deque<TraceEntry>> entries_;
  std::vector<CCA::AllocatorTraceTracker> trackers_;
  struct Live {
    uint64_t size = 0;
    void* stream = nullptr;
    Context freed_by;  // the stack of its free request, for its completion
    Context allocated_by;  // for the snapshot's blocks, as PyTorch gives them
  };
  std::map<std::pair<int, uint64_t>, Live> live_;  // blocks the allocators hold
};

}  // namespace hbmalloc::torch_ext

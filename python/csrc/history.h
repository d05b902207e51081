// PyTorch's allocation history (torch.cuda.memory._record_memory_history):
// TraceEntry records per device, kept in a ring of bounded size, plus the
// trace trackers torch attaches. Entries are built here from what the
// extension sees: allocs, frees, OOMs, and segments appearing or going.
#pragma once

#include <c10/cuda/CUDACachingAllocator.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#include "hbmalloc/layout.hpp"

namespace hbmalloc::torch_ext {

namespace CCA = c10::cuda::CUDACachingAllocator;
using TraceEntry = decltype(std::declval<CCA::SnapshotInfo>().device_traces)::value_type::value_type;
using Context = std::shared_ptr<c10::GatheredContext>;

class History {
 public:
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
  // The free of a block: requested and completed (hbmalloc tells no delay
  // apart here), with the size and stream its alloc was recorded with.
  void record_free(int device, uint64_t addr, const Context& context);
  // What the device holds when recording starts (recorded as no event).
  void seed_segments(int device, const Layout& layout);
  // Compares the device's segments with those seen last and records each
  // segment that appeared or went.
  void record_segments(int device, const Layout& layout, const Context& context);
  // A copy of every device's entries, indexed by device number.
  std::vector<std::vector<TraceEntry>> entries(int devices) const;

 private:
  void update_active();

  mutable std::mutex mu_;
  std::atomic<bool> active_{false};
  bool recording_ = false;
  CCA::CreateContextFn gather_ = nullptr;
  CCA::RecordContext when_ = CCA::RecordContext::NEVER;
  size_t max_entries_ = 0;
  std::map<int, std::deque<TraceEntry>> entries_;
  std::map<int, std::map<uint64_t, uint64_t>> segments_;  // per device: address -> bytes
  std::vector<CCA::AllocatorTraceTracker> trackers_;
  struct Live {
    uint64_t size = 0;
    void* stream = nullptr;
  };
  std::map<std::pair<int, uint64_t>, Live> live_;  // blocks whose alloc was recorded
};

}  // namespace hbmalloc::torch_ext

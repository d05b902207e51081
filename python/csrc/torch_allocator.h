// The libtorch side of hbmalloc: a CUDAAllocator over the process's hbmalloc
// Allocators (include/hbmalloc/registry.hpp). Methods whose signature changed
// between torch 2.4 and the newest are declared in each form without
// `override`: the form the installed torch declares overrides it, the others
// are plain members nobody calls.
#pragma once

#include <c10/cuda/CUDACachingAllocator.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "history.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "hbmalloc/ipc.hpp"

#ifndef HBMT_TORCH_VERSION
#error "HBMT_TORCH_VERSION (torch major * 100 + minor) must be defined by the build"
#endif

namespace hbmalloc::torch_ext {

// Inside the class, plain `Allocator` names c10::Allocator (a base).
using HbmAllocator = hbmalloc::Allocator;

class TorchAllocator final : public CCA::CUDAAllocator {
 public:
  static TorchAllocator& instance();

  c10::DataPtr allocate(size_t size) override;
  c10::DeleterFnPtr raw_deleter() const override;
  void copy_data(void* dest, const void* src, std::size_t count) const override;

  void* raw_alloc(size_t nbytes) override;
  void* raw_alloc_with_stream(size_t nbytes, cudaStream_t stream) override;
  void raw_delete(void* ptr) override;
  void init(int device_count) override;
  bool initialized() override;
  void setMemoryFraction(double fraction, c10::DeviceIndex device) override;
  double getMemoryFraction(c10::DeviceIndex device);
  void enable(bool value);
  bool isEnabled() const;
  void emptyCache();
  void emptyCache(c10::cuda::MempoolId_t pool);
  void cacheInfo(c10::DeviceIndex device, size_t* largest_block) override;
  void* getBaseAllocation(void* ptr, size_t* size) override;
  void recordStream(const c10::DataPtr& ptr, c10::cuda::CUDAStream stream) override;
  CCA::DeviceStats getDeviceStats(c10::DeviceIndex device) override;
  void resetAccumulatedStats(c10::DeviceIndex device) override;
  void resetPeakStats(c10::DeviceIndex device) override;

  CCA::SnapshotInfo snapshot();
  CCA::SnapshotInfo snapshot(c10::cuda::MempoolId_t pool);
  CCA::SnapshotInfo snapshot(c10::cuda::MempoolId_t pool, bool include_traces);
  bool isHistoryEnabled() override;
  void recordHistory(bool enabled, CCA::CreateContextFn gather, size_t max_entries, CCA::RecordContext when);
  void recordHistory(bool enabled, CCA::CreateContextFn gather, size_t max_entries, CCA::RecordContext when,
                     bool clear);
  void recordHistory(bool enabled, CCA::CreateContextFn gather, size_t max_entries, CCA::RecordContext when,
                     bool clear, const std::vector<std::string>& skip_actions);
  void attachOutOfMemoryObserver(CCA::OutOfMemoryObserver observer) override;
  void attachAllocatorTraceTracker(CCA::AllocatorTraceTracker tracker) override;

  void beginAllocateToPool(c10::DeviceIndex device, c10::cuda::MempoolId_t pool,
                           std::function<bool(cudaStream_t)> filter) override;
  void endAllocateToPool(c10::DeviceIndex device, c10::cuda::MempoolId_t pool) override;
  void releasePool(c10::DeviceIndex device, c10::cuda::MempoolId_t pool) override;
  int getPoolUseCount(c10::DeviceIndex device, c10::cuda::MempoolId_t pool);
  void createOrIncrefPool(c10::DeviceIndex device, c10::cuda::MempoolId_t pool,
                          std::shared_ptr<CCA::CUDAAllocator> allocator);
  bool checkPoolLiveAllocations(c10::DeviceIndex device, c10::cuda::MempoolId_t pool,
                                const std::unordered_set<void*>& expected) override;

#if HBMT_TORCH_VERSION >= 210
  std::vector<CCA::StreamSegmentSize> getExpandableSegmentSizes(c10::DeviceIndex device) override;
#endif
#if HBMT_TORCH_VERSION >= 205
  CCA::ShareableHandle shareIpcHandle(void* ptr) override;
#endif
  // torch >= 2.12's OomRejectionObserver, spelled out so it also builds before.
  using LimitObserver = std::function<void(int64_t device, size_t request, size_t allocated, size_t device_total)>;
  void attachOomRejectionObserver(LimitObserver observer);
  std::shared_ptr<void> getIpcDevPtr(std::string handle) override;
  std::shared_ptr<CCA::AllocatorState> getCheckpointState(c10::DeviceIndex device, c10::cuda::MempoolId_t id) override;
  CCA::CheckpointDelta setCheckpointPoolState(c10::DeviceIndex device,
                                              std::shared_ptr<CCA::AllocatorState> state) override;
  void enablePeerAccess(c10::DeviceIndex dev, c10::DeviceIndex dev_to_access) override;
  cudaError_t memcpyAsync(void* dst, int dst_device, const void* src, int src_device, size_t count,
                          cudaStream_t stream, bool p2p_enabled) override;
  std::string name() override;

  // What allocate() and raw_alloc*() do once the device and stream are known.
  void* allocate_on(c10::DeviceIndex d, size_t size, cudaStream_t stream);

 private:
  TorchAllocator() = default;

  HbmAllocator& device(c10::DeviceIndex d);
  void free(void* ptr);
  // The history observes a device's allocator while it is active.
  void watch(HbmAllocator& a);
  void history_changed();  // watch() every device allocator there is
  [[noreturn]] void out_of_memory(c10::DeviceIndex d, HbmAllocator& a, size_t size, cudaStream_t stream,
                                  const Error& e);
  static void delete_block(void* ptr);
  std::string share_block(void* ptr);
  void unshare(void* ptr);

  std::atomic<bool> initialized_{false};
  std::atomic<uint64_t> used_devices_{0};  // bit d: device d has allocated
  int device_count_ = 0;
  bool enabled_ = true;
  const std::shared_ptr<History> history_ = std::make_shared<History>();
  std::mutex mu_;  // guards the members below
  std::map<int, double> fractions_;
  std::map<int, Stats> accumulated_base_;
  std::vector<CCA::OutOfMemoryObserver> oom_observers_;
  std::vector<LimitObserver> limit_observers_;  // told when the memory limit refuses a request
  std::map<void*, IpcBlock> shared_;            // blocks shared with other processes, their descriptors open
  // Allocations that took a stack: every kNameStacksEvery-th names the recorder's waiting ones.
  static constexpr uint64_t kNameStacksEvery = 4096;
  std::atomic<uint64_t> stacks_taken_{0};
  std::atomic<size_t> shared_count_{0};         // shared_.size(), read on every free
  std::map<std::string, std::weak_ptr<void>> opened_;  // other processes' blocks open here, by handle
};

}  // namespace hbmalloc::torch_ext

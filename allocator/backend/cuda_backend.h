// The real device: plain segments and events through the CUDA runtime API,
// virtual memory management through the driver API reached at run time
// (cuda_vmm.h). Only libcudart is linked, so the library loads on a machine
// without a GPU and fails (with Error(kBackend)) only when a CudaBackend is
// constructed there.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <unordered_set>  // not absl: its hash tables cannot be linked into our .so (see core/pointer_map.h)
#include "backend/backend.h"
#include "backend/cuda_vmm.h"

// cudaEvent_t is `CUevent_st*`; declared here so that including this header
// does not pull the CUDA runtime headers into every user.
struct CUevent_st;

namespace hbmalloc {

class CudaBackend final : public Backend {
 public:
  // Throws Error(kBackend) when `device` does not exist or cannot be used
  // (no driver, no device, index out of range).
  // `shareable`: page-mapped memory is created exportable (Config::ipc).
  explicit CudaBackend(int device, bool shareable = true);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string_view name() const override { return "cuda"; }
  int device() const override { return device_; }
  uint64_t capacity() const override { return capacity_; }
  void* malloc_segment(uint64_t bytes) override;
  void free_segment(void* ptr, uint64_t bytes) override;
  // `stream` is a cudaStream_t (0: the legacy default stream); the EventId is
  // the cudaEvent_t handle.
  EventId record_event(StreamId stream) override;
  bool event_done(EventId event) override;
  void release_event(EventId event) override;
  void synchronize() override;
  // Runtime peer access for plain segments, and access set for `peer` on
  // every mapping now and from now on.
  void grant_peer(int peer) override;

  // 0 when the driver or device has no VMM (vmm_unavailable_reason() says why).
  uint64_t vmm_granularity() const override { return vmm_->granularity(); }
  const std::string& vmm_unavailable_reason() const { return vmm_->why(); }
  void* reserve_range(uint64_t bytes) override;
  void release_range(void* base, uint64_t bytes) override;
  GranuleId create_granule(uint64_t bytes) override;
  void release_granule(GranuleId granule) override;
  void map(void* addr, GranuleId granule) override;
  void set_access(void* addr, uint64_t bytes) override;
  void unmap(void* addr, uint64_t bytes) override;
  // Page-mapped memory as its granules' descriptors, a plain segment as its
  // CUDA IPC handle (cudaIpcGetMemHandle / cudaIpcOpenMemHandle).
  IpcBlock share_range(void* addr, uint64_t bytes) override;
  void* open_shared(const IpcBlock& block) override;
  void close_shared(void* ptr) override;

  // Test hooks.
  size_t pooled_events() const;
  size_t outstanding_events() const;

 private:
  using Event = CUevent_st*;
  // Released events kept for reuse beyond this many are destroyed: creating an
  // event is cheap but not free, and a burst should not pin handles forever.
  static constexpr size_t kMaxPooledEvents = 64;

  // The handle behind `id`; throws kInvalidArgument if we did not hand it out. Needs mu_.
  Event find_outstanding(EventId id, const char* what);

  int device_;
  uint64_t capacity_ = 0;

  // The Allocator serializes calls per device, but the pool is cheap to guard
  // and the backend is also used on its own (tools, tests).
  mutable std::mutex mu_;
  std::vector<Event> pool_;                     // created, not in use
  std::unordered_set<Event> outstanding_;      // handed out, not yet released
  std::unique_ptr<CudaVmm> vmm_;               // guarded by mu_ too
  std::map<uintptr_t, uint64_t> plain_;        // segments from cudaMalloc: base -> bytes
  std::map<uintptr_t, uint64_t> opened_plain_; // other processes' segments opened here: base -> bytes used
};

}  // namespace hbmalloc

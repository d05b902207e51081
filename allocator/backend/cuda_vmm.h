// The CUDA driver's virtual memory management for one device (cuMemCreate,
// cuMemAddressReserve, cuMemMap, cuMemSetAccess, cuMemUnmap, cuMemRelease).
// The driver functions are looked up at run time through the runtime's
// cudaGetDriverEntryPointByVersion, so nothing links against libcuda: the
// library loads on a machine without a driver, and a device or driver
// without VMM gives granularity 0 (the policy then uses plain segments).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/vmm_table.h"

namespace hbmalloc {

class CudaVmm {
 public:
  // Looks the entry points up and asks the device; never throws. The caller
  // has made the device current. `shareable`: granules are created so that
  // they can be exported as POSIX file descriptors (where the device offers it).
  CudaVmm(int device, bool shareable);
  ~CudaVmm();
  CudaVmm(const CudaVmm&) = delete;
  CudaVmm& operator=(const CudaVmm&) = delete;

  // 0 when VMM cannot be used; why() then says why.
  uint64_t granularity() const { return granularity_; }
  const std::string& why() const { return why_; }

  // The Backend operations; the caller holds the device current and a lock.
  void* reserve_range(uint64_t bytes);
  void release_range(void* base, uint64_t bytes);
  GranuleId create_granule(uint64_t bytes);
  void release_granule(GranuleId granule);
  void map(void* addr, GranuleId granule);
  void set_access(void* addr, uint64_t bytes);
  // `peer` joins the devices every mapping grants access to: set again on
  // those mapped now, and on every later set_access.
  void grant_peer(int peer);
  void unmap(void* addr, uint64_t bytes);

  // IPC (Backend::share_range, open_shared, close_shared).
  IpcBlock share_range(void* addr, uint64_t bytes);
  void* open_shared(const IpcBlock& block);
  void close_shared(void* ptr);
  // Whether granules are created exportable; why_unshared() says why not.
  bool shareable() const { return shareable_; }
  const std::string& why_unshared() const { return why_unshared_; }

 private:
  struct Driver;  // the resolved entry points
  [[noreturn]] void fail(const char* call, int result) const;
  void require(const char* op) const;

  int device_;
  uint64_t granularity_ = 0;
  std::string why_;
  std::unique_ptr<Driver> driver_;
  std::unique_ptr<VmmTable> table_;  // payload: the CUmemGenericAllocationHandle
  std::vector<int> peers_;           // devices granted access besides this one
  bool shareable_ = false;
  std::string why_unshared_;
  // Blocks of other processes mapped here: reservation base -> its bytes and granules.
  struct Opened {
    uint64_t bytes = 0;
    std::vector<GranuleId> granules;
  };
  std::map<uint64_t, Opened> opened_;
};

}  // namespace hbmalloc

#include "backend/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {

static_assert(sizeof(cudaStream_t) == sizeof(StreamId) && sizeof(cudaEvent_t) == sizeof(EventId),
              "CUDA handles travel as uintptr_t");

std::string cuda_message(cudaError_t err) {
  return std::string(cudaGetErrorString(err)) + " (" + cudaGetErrorName(err) + ")";
}

// Clears the runtime's last-error slot so a failure we report (or absorb) does
// not surface again in the caller's next cudaGetLastError().
[[noreturn]] void throw_cuda(int device, const std::string& call, cudaError_t err) {
  (void)cudaGetLastError();
  throw Error(ErrorCode::kBackend, "cuda: device " + std::to_string(device) + ": " + call + " failed: " + cuda_message(err));
}

// Makes `device` current for the guard's lifetime and restores the caller's
// device afterwards: the allocator runs on the caller's thread, which may be
// working on another device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaError_t err = cudaGetDevice(&previous_); err != cudaSuccess) throw_cuda(device, "cudaGetDevice", err);
    if (previous_ != device) {
      if (cudaError_t err = cudaSetDevice(device); err != cudaSuccess) throw_cuda(device, "cudaSetDevice", err);
      switched_ = true;
    }
  }
  // For the destructor: best effort, never throws.
  struct NoThrow {};
  DeviceGuard(int device, NoThrow) noexcept {
    if (cudaGetDevice(&previous_) == cudaSuccess && previous_ != device) switched_ = cudaSetDevice(device) == cudaSuccess;
    (void)cudaGetLastError();
  }
  ~DeviceGuard() {
    if (switched_ && cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

cudaStream_t to_stream(StreamId stream) { return reinterpret_cast<cudaStream_t>(stream); }
EventId to_id(cudaEvent_t event) { return reinterpret_cast<EventId>(event); }

}  // namespace

CudaBackend::CudaBackend(int device, bool shareable) : device_(device) {
  const std::string where = "cuda: device " + std::to_string(device);
  if (device < 0) throw Error(ErrorCode::kBackend, where + " unavailable: negative device index");
  // The first runtime call is where a missing driver or device shows up.
  int count = 0;
  if (cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(ErrorCode::kBackend, where + " unavailable: " + cuda_message(err));
  }
  if (device >= count)
    throw Error(ErrorCode::kBackend,
                where + " unavailable: out of range, " + std::to_string(count) + " CUDA device(s) visible");

  // Also creates the device's primary context, so a broken device fails here
  // rather than on the first allocation.
  DeviceGuard guard(device_);
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaError_t err = cudaMemGetInfo(&free_bytes, &total_bytes); err != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(ErrorCode::kBackend, where + " unavailable: cudaMemGetInfo failed: " + cuda_message(err));
  }
  capacity_ = total_bytes;
  vmm_ = std::make_unique<CudaVmm>(device_, shareable);
}

CudaBackend::~CudaBackend() {
  // May run during process exit after the runtime has begun unloading; any
  // error here is ignored, there is nothing left to report it to.
  std::lock_guard lock(mu_);
  DeviceGuard guard(device_, DeviceGuard::NoThrow{});
  for (cudaEvent_t event : pool_) (void)cudaEventDestroy(event);
  for (cudaEvent_t event : outstanding_) (void)cudaEventDestroy(event);
  (void)cudaGetLastError();
}

void* CudaBackend::malloc_segment(uint64_t bytes) {
  if (bytes == 0) throw Error(ErrorCode::kInvalidArgument, "cuda: zero-byte segment");
  DeviceGuard guard(device_);
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, bytes);
  if (err == cudaErrorMemoryAllocation) {
    // Not sticky: clear it so the caller may release its cache and retry.
    (void)cudaGetLastError();
    return nullptr;
  }
  if (err != cudaSuccess) throw_cuda(device_, "cudaMalloc(" + std::to_string(bytes) + " bytes)", err);
  std::lock_guard lock(mu_);
  plain_[reinterpret_cast<uintptr_t>(ptr)] = bytes;
  return ptr;
}

void CudaBackend::free_segment(void* ptr, uint64_t bytes) {
  DeviceGuard guard(device_);
  if (cudaError_t err = cudaFree(ptr); err != cudaSuccess)
    throw_cuda(device_, "cudaFree(" + std::to_string(bytes) + " bytes)", err);
  std::lock_guard lock(mu_);
  plain_.erase(reinterpret_cast<uintptr_t>(ptr));
}

EventId CudaBackend::record_event(StreamId stream) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  cudaEvent_t event = nullptr;
  if (!pool_.empty()) {
    event = pool_.back();
    pool_.pop_back();
  } else if (cudaError_t err = cudaEventCreateWithFlags(&event, cudaEventDisableTiming); err != cudaSuccess) {
    throw_cuda(device_, "cudaEventCreateWithFlags", err);
  }
  if (cudaError_t err = cudaEventRecord(event, to_stream(stream)); err != cudaSuccess) {
    pool_.push_back(event);  // never recorded, still good for the next caller
    throw_cuda(device_, "cudaEventRecord", err);
  }
  outstanding_.insert(event);
  return to_id(event);
}

CudaBackend::Event CudaBackend::find_outstanding(EventId id, const char* what) {
  auto event = reinterpret_cast<cudaEvent_t>(id);
  // A handle we did not hand out would be undefined behaviour in the runtime.
  if (!outstanding_.contains(event))
    throw Error(ErrorCode::kInvalidArgument, std::string("cuda: ") + what + ": unknown event " + std::to_string(id));
  return event;
}

bool CudaBackend::event_done(EventId id) {
  DeviceGuard guard(device_);
  cudaEvent_t event;
  {
    std::lock_guard lock(mu_);
    event = find_outstanding(id, "event_done");
  }
  cudaError_t err = cudaEventQuery(event);
  if (err == cudaSuccess) return true;
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();  // "not ready" is an answer, not an error
    return false;
  }
  throw_cuda(device_, "cudaEventQuery", err);
}

void CudaBackend::release_event(EventId id) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  cudaEvent_t event = find_outstanding(id, "release_event");
  outstanding_.erase(event);
  // Re-recording a pooled event later is fine even if this one is pending.
  if (pool_.size() < kMaxPooledEvents) {
    pool_.push_back(event);
    return;
  }
  if (cudaError_t err = cudaEventDestroy(event); err != cudaSuccess) throw_cuda(device_, "cudaEventDestroy", err);
}

void CudaBackend::synchronize() {
  DeviceGuard guard(device_);
  if (cudaError_t err = cudaDeviceSynchronize(); err != cudaSuccess) throw_cuda(device_, "cudaDeviceSynchronize", err);
}

void* CudaBackend::reserve_range(uint64_t bytes) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  return vmm_->reserve_range(bytes);
}

void CudaBackend::release_range(void* base, uint64_t bytes) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  vmm_->release_range(base, bytes);
}

GranuleId CudaBackend::create_granule(uint64_t bytes) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  return vmm_->create_granule(bytes);
}

void CudaBackend::release_granule(GranuleId granule) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  vmm_->release_granule(granule);
}

void CudaBackend::map(void* addr, GranuleId granule) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  vmm_->map(addr, granule);
}

void CudaBackend::grant_peer(int peer) {
  if (peer == device_) return;
  int count = 0;
  if (cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess) throw_cuda(device_, "cudaGetDeviceCount", err);
  if (peer < 0 || peer >= count)
    throw Error(ErrorCode::kBackend, "cuda: device " + std::to_string(device_) + ": peer device " +
                                         std::to_string(peer) + " out of range, " + std::to_string(count) +
                                         " CUDA device(s) visible");
  {
    // cudaMalloc memory: the peer's context enables access to this device.
    DeviceGuard guard(peer);
    cudaError_t err = cudaDeviceEnablePeerAccess(device_, 0);
    if (err == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError();
    else if (err != cudaSuccess) throw_cuda(device_, "cudaDeviceEnablePeerAccess from device " + std::to_string(peer), err);
  }
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  if (vmm_->granularity() != 0) vmm_->grant_peer(peer);
}

void CudaBackend::set_access(void* addr, uint64_t bytes) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  vmm_->set_access(addr, bytes);
}

void CudaBackend::unmap(void* addr, uint64_t bytes) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  vmm_->unmap(addr, bytes);
}

namespace {
// The entry of `m` (base -> bytes) whose range holds addr, or end().
std::map<uintptr_t, uint64_t>::iterator holding(std::map<uintptr_t, uint64_t>& m, uintptr_t addr) {
  auto it = m.upper_bound(addr);
  if (it == m.begin()) return m.end();
  --it;
  return addr < it->first + it->second ? it : m.end();
}
}  // namespace

IpcBlock CudaBackend::share_range(void* addr, uint64_t bytes) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  auto seg = holding(plain_, reinterpret_cast<uintptr_t>(addr));
  if (seg == plain_.end()) return vmm_->share_range(addr, bytes);
  IpcBlock block;
  block.segment = true;
  block.offset = reinterpret_cast<uintptr_t>(addr) - seg->first;
  block.size = bytes;
  cudaIpcMemHandle_t handle{};
  if (cudaError_t err = cudaIpcGetMemHandle(&handle, reinterpret_cast<void*>(seg->first)); err != cudaSuccess)
    throw_cuda(device_, "cudaIpcGetMemHandle", err);
  static_assert(sizeof handle == sizeof block.segment_handle);
  std::memcpy(block.segment_handle.data(), &handle, sizeof handle);
  return block;
}

void* CudaBackend::open_shared(const IpcBlock& block) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  if (!block.segment) return vmm_->open_shared(block);
  if (block.size == 0 || block.offset > UINT64_MAX - block.size)
    throw Error(ErrorCode::kInvalidArgument, "cuda: open_shared: a block of " + std::to_string(block.size) +
                                                 " bytes at offset " + std::to_string(block.offset));
  cudaIpcMemHandle_t handle{};
  std::memcpy(&handle, block.segment_handle.data(), sizeof handle);
  void* base = nullptr;
  if (cudaError_t err = cudaIpcOpenMemHandle(&base, handle, cudaIpcMemLazyEnablePeerAccess); err != cudaSuccess)
    throw_cuda(device_, "cudaIpcOpenMemHandle", err);
  opened_plain_[reinterpret_cast<uintptr_t>(base)] = block.offset + block.size;
  return static_cast<char*>(base) + block.offset;
}

void CudaBackend::close_shared(void* ptr) {
  DeviceGuard guard(device_);
  std::lock_guard lock(mu_);
  auto opened = holding(opened_plain_, reinterpret_cast<uintptr_t>(ptr));
  if (opened == opened_plain_.end()) return vmm_->close_shared(ptr);
  if (cudaError_t err = cudaIpcCloseMemHandle(reinterpret_cast<void*>(opened->first)); err != cudaSuccess)
    throw_cuda(device_, "cudaIpcCloseMemHandle", err);
  opened_plain_.erase(opened);
}

size_t CudaBackend::pooled_events() const {
  std::lock_guard lock(mu_);
  return pool_.size();
}

size_t CudaBackend::outstanding_events() const {
  std::lock_guard lock(mu_);
  return outstanding_.size();
}

}  // namespace hbmalloc

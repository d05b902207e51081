#include "backend/cuda_vmm.h"

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <unistd.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

// The driver ABI these signatures belong to (VMM has not changed since 10.2).
static constexpr unsigned kDriverVersion = 12000;

struct CudaVmm::Driver {
  decltype(&::cuDeviceGetAttribute) device_get_attribute = nullptr;
  decltype(&::cuMemGetAllocationGranularity) get_granularity = nullptr;
  decltype(&::cuMemAddressReserve) address_reserve = nullptr;
  decltype(&::cuMemAddressFree) address_free = nullptr;
  decltype(&::cuMemCreate) create = nullptr;
  decltype(&::cuMemRelease) release = nullptr;
  decltype(&::cuMemMap) map = nullptr;
  decltype(&::cuMemUnmap) unmap = nullptr;
  decltype(&::cuMemSetAccess) set_access = nullptr;
  decltype(&::cuGetErrorString) error_string = nullptr;
  // IPC: optional (without them memory is not shared, VMM still works).
  decltype(&::cuMemExportToShareableHandle) export_handle = nullptr;
  decltype(&::cuMemImportFromShareableHandle) import_handle = nullptr;

  // Looks `name` up into fn; false (with the name in `why`, when empty) when missing.
  template <typename F>
  static bool lookup(const char* name, F& fn, std::string& why) {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult status{};
    cudaError_t err = cudaGetDriverEntryPointByVersion(name, &p, kDriverVersion, cudaEnableDefault, &status);
    if (err != cudaSuccess || status != cudaDriverEntryPointSuccess || p == nullptr) {
      (void)cudaGetLastError();
      if (why.empty()) why = std::string("driver entry point ") + name + " not found";
      return false;
    }
    fn = reinterpret_cast<F>(p);
    return true;
  }

  // False (with the missing name in `why`) when an entry point is missing.
  bool resolve(std::string& why) {
    auto one = [&](const char* name, auto& fn) { return lookup(name, fn, why); };
    bool ok = one("cuDeviceGetAttribute", device_get_attribute);
    ok = one("cuMemGetAllocationGranularity", get_granularity) && ok;
    ok = one("cuMemAddressReserve", address_reserve) && ok;
    ok = one("cuMemAddressFree", address_free) && ok;
    ok = one("cuMemCreate", create) && ok;
    ok = one("cuMemRelease", release) && ok;
    ok = one("cuMemMap", map) && ok;
    ok = one("cuMemUnmap", unmap) && ok;
    ok = one("cuMemSetAccess", set_access) && ok;
    ok = one("cuGetErrorString", error_string) && ok;
    return ok;
  }
  bool resolve_sharing(std::string& why) {
    auto one = [&](const char* name, auto& fn) { return lookup(name, fn, why); };
    const bool a = one("cuMemExportToShareableHandle", export_handle);
    return one("cuMemImportFromShareableHandle", import_handle) && a;
  }
};

namespace {

CUmemAllocationProp device_memory(int device) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  return prop;
}

CUdeviceptr dptr(void* p) { return reinterpret_cast<CUdeviceptr>(p); }

}  // namespace

CudaVmm::CudaVmm(int device, bool shareable) : device_(device), driver_(std::make_unique<Driver>()) {
  if (!driver_->resolve(why_)) return;
  int supported = 0;
  CUresult r = driver_->device_get_attribute(&supported, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
                                             CUdevice(device));
  if (r != CUDA_SUCCESS || supported == 0) {
    why_ = "device " + std::to_string(device) + " does not support virtual memory management";
    return;
  }
  CUmemAllocationProp prop = device_memory(device);
  size_t granularity = 0;
  r = driver_->get_granularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
  if (r != CUDA_SUCCESS || granularity == 0 || (granularity & (granularity - 1)) != 0) {
    why_ = "cuMemGetAllocationGranularity gave no usable granularity";
    return;
  }
  granularity_ = granularity;
  table_ = std::make_unique<VmmTable>("cuda", granularity_);
  int fd_handles = 0;
  if (!shareable) {
    why_unshared_ = "ipc:off";
  } else if (!driver_->resolve_sharing(why_unshared_)) {
  } else if (driver_->device_get_attribute(&fd_handles, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED,
                                           CUdevice(device)) != CUDA_SUCCESS ||
             fd_handles == 0) {
    why_unshared_ = "device " + std::to_string(device) + " has no POSIX file descriptor handles";
  } else {
    shareable_ = true;
  }
}

CudaVmm::~CudaVmm() = default;

void CudaVmm::fail(const char* call, int result) const {
  const char* text = nullptr;
  if (driver_->error_string == nullptr || driver_->error_string(CUresult(result), &text) != CUDA_SUCCESS) text = nullptr;
  throw Error(ErrorCode::kBackend, "cuda: device " + std::to_string(device_) + ": " + call + " failed: " +
                                       (text ? text : "error " + std::to_string(result)));
}

void CudaVmm::require(const char* op) const {
  if (granularity_ == 0)
    throw Error(ErrorCode::kBackend, std::string("cuda: ") + op + ": no virtual memory management (" + why_ + ")");
}

void* CudaVmm::reserve_range(uint64_t bytes) {
  require("reserve_range");
  table_->check_size("reserve_range", bytes);
  CUdeviceptr base = 0;
  CUresult r = driver_->address_reserve(&base, bytes, granularity_, 0, 0);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) return nullptr;
  if (r != CUDA_SUCCESS) fail("cuMemAddressReserve", r);
  table_->add_range(uint64_t(base), bytes);
  return reinterpret_cast<void*>(base);
}

void CudaVmm::release_range(void* base, uint64_t bytes) {
  require("release_range");
  table_->remove_range(uint64_t(dptr(base)), bytes);
  if (CUresult r = driver_->address_free(dptr(base), bytes); r != CUDA_SUCCESS) fail("cuMemAddressFree", r);
}

GranuleId CudaVmm::create_granule(uint64_t bytes) {
  require("create_granule");
  table_->check_size("create_granule", bytes);
  CUmemAllocationProp prop = device_memory(device_);
  // Exportable, as PyTorch's expandable segments are, so a block can be
  // opened by another process (torch.multiprocessing, weight hand-off).
  if (shareable_) prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  CUmemGenericAllocationHandle handle = 0;
  CUresult r = driver_->create(&handle, bytes, &prop, 0);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) return 0;
  if (r != CUDA_SUCCESS) fail("cuMemCreate", r);
  return table_->add_granule(bytes, uint64_t(handle));
}

void CudaVmm::release_granule(GranuleId granule) {
  require("release_granule");
  VmmTable::Granule g = table_->remove_granule(granule);
  if (CUresult r = driver_->release(CUmemGenericAllocationHandle(g.payload)); r != CUDA_SUCCESS) fail("cuMemRelease", r);
}

void CudaVmm::map(void* addr, GranuleId granule) {
  require("map");
  const VmmTable::Granule& g = table_->map(uint64_t(dptr(addr)), granule);
  if (CUresult r = driver_->map(dptr(addr), g.size, 0, CUmemGenericAllocationHandle(g.payload), 0); r != CUDA_SUCCESS) {
    table_->unmap(uint64_t(dptr(addr)), g.size, [](uint64_t, GranuleId) {});
    fail("cuMemMap", r);
  }
}

namespace {
// Read-write access for the device and each peer.
std::vector<CUmemAccessDesc> access_for(int device, const std::vector<int>& peers) {
  std::vector<CUmemAccessDesc> out(peers.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    out[i].location.id = i < peers.size() ? peers[i] : device;
    out[i].flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  }
  return out;
}
}  // namespace

void CudaVmm::set_access(void* addr, uint64_t bytes) {
  require("set_access");
  table_->set_access(uint64_t(dptr(addr)), bytes);
  const std::vector<CUmemAccessDesc> access = access_for(device_, peers_);
  if (CUresult r = driver_->set_access(dptr(addr), bytes, access.data(), access.size()); r != CUDA_SUCCESS)
    fail("cuMemSetAccess", r);
}

void CudaVmm::grant_peer(int peer) {
  require("grant_peer");
  if (peer == device_ || std::find(peers_.begin(), peers_.end(), peer) != peers_.end()) return;
  std::vector<int> peers = peers_;
  peers.push_back(peer);
  const std::vector<CUmemAccessDesc> access = access_for(device_, peers);
  // Every mapping the device may use now gets the peer too; the peer counts
  // only once all have it, so a failure leaves the old grants in place.
  table_->for_each_accessible([&](uint64_t addr, uint64_t bytes) {
    if (CUresult r = driver_->set_access(CUdeviceptr(addr), bytes, access.data(), access.size()); r != CUDA_SUCCESS)
      fail("cuMemSetAccess", r);
  });
  peers_ = std::move(peers);
}

void CudaVmm::unmap(void* addr, uint64_t bytes) {
  require("unmap");
  // One call per mapping: cuMemUnmap takes whole mappings, and a granule
  // handle may have been mapped on its own.
  table_->unmap(uint64_t(dptr(addr)), bytes, [&](uint64_t at, GranuleId id) {
    if (CUresult r = driver_->unmap(CUdeviceptr(at), table_->granule(id)->size); r != CUDA_SUCCESS) fail("cuMemUnmap", r);
  });
}

// ---- sharing with another process ----------------------------------------------

IpcBlock CudaVmm::share_range(void* addr, uint64_t bytes) {
  const uint64_t at = uint64_t(dptr(addr));
  const auto [first, m] = granularity_ != 0 ? table_->mapping_covering(at) : std::pair<uint64_t, const VmmTable::Mapping*>{};
  if (m == nullptr)
    throw Error(ErrorCode::kInvalidArgument, "cuda: device " + std::to_string(device_) + ": share_range: " +
                                                 std::to_string(at) + " is neither mapped memory nor a segment");
  if (!shareable_)
    throw Error(ErrorCode::kBackend, "cuda: device " + std::to_string(device_) +
                                         ": memory was created unshareable (" + why_unshared_ + ")");
  IpcBlock block;
  block.offset = at - first;
  block.size = bytes;
  try {
    for (uint64_t cursor = first; cursor < at + bytes;) {
      const auto [start, mapping] = table_->mapping_covering(cursor);
      if (mapping == nullptr || start != cursor)
        throw Error(ErrorCode::kInvalidArgument, "cuda: share_range: byte " + std::to_string(cursor - at) +
                                                     " of the block is not mapped");
      const VmmTable::Granule* g = table_->granule(mapping->granule);
      int fd = -1;
      if (CUresult r = driver_->export_handle(&fd, CUmemGenericAllocationHandle(g->payload),
                                              CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
          r != CUDA_SUCCESS)
        fail("cuMemExportToShareableHandle", r);
      block.pieces.push_back({fd, mapping->size});
      cursor += mapping->size;
    }
  } catch (...) {
    for (const IpcPiece& p : block.pieces) ::close(p.fd);
    throw;
  }
  return block;
}

void* CudaVmm::open_shared(const IpcBlock& block) {
  require("open_shared");
  if (!shareable_)
    throw Error(ErrorCode::kBackend, "cuda: device " + std::to_string(device_) + ": open_shared: cannot import (" +
                                         why_unshared_ + ")");
  uint64_t total = 0;
  for (const IpcPiece& p : block.pieces) {
    if (p.fd < 0) throw Error(ErrorCode::kInvalidArgument, "cuda: open_shared: a piece has no file descriptor");
    table_->check_size("open_shared", p.bytes);
    total += p.bytes;
  }
  if (block.pieces.empty() || block.size == 0 || block.offset >= total || block.size > total - block.offset)
    throw Error(ErrorCode::kInvalidArgument, "cuda: open_shared: the block (offset " + std::to_string(block.offset) +
                                                 ", " + std::to_string(block.size) + " bytes) does not lie in its " +
                                                 std::to_string(total) + " bytes of pieces");
  void* base = reserve_range(total);
  if (base == nullptr) throw Error(ErrorCode::kOutOfMemory, "cuda: open_shared: no address space left");
  Opened opened{total, {}};
  uint64_t mapped = 0;
  try {
    for (const IpcPiece& p : block.pieces) {
      CUmemGenericAllocationHandle handle = 0;
      if (CUresult r = driver_->import_handle(&handle, reinterpret_cast<void*>(uintptr_t(p.fd)),
                                              CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
          r != CUDA_SUCCESS)
        fail("cuMemImportFromShareableHandle", r);
      opened.granules.push_back(table_->add_granule(p.bytes, uint64_t(handle)));
      map(static_cast<char*>(base) + mapped, opened.granules.back());
      mapped += p.bytes;
    }
    set_access(base, total);
  } catch (...) {
    try {
      if (mapped > 0) unmap(base, mapped);
      for (GranuleId g : opened.granules) release_granule(g);
      release_range(base, total);
    } catch (...) {
    }
    throw;
  }
  opened_[uint64_t(dptr(base))] = std::move(opened);
  return static_cast<char*>(base) + block.offset;
}

void CudaVmm::close_shared(void* ptr) {
  auto it = opened_.upper_bound(uint64_t(dptr(ptr)));
  if (it == opened_.begin() || uint64_t(dptr(ptr)) >= std::prev(it)->first + std::prev(it)->second.bytes)
    throw Error(ErrorCode::kInvalidArgument, "cuda: close_shared: " + std::to_string(uint64_t(dptr(ptr))) +
                                                 " is not a block open_shared returned");
  --it;
  void* base = reinterpret_cast<void*>(it->first);
  unmap(base, it->second.bytes);
  for (GranuleId g : it->second.granules) release_granule(g);
  release_range(base, it->second.bytes);
  opened_.erase(it);
}

}  // namespace hbmalloc

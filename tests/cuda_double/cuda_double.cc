// A validating CUDA double: a libcudart.so.13 built from the project that
// exports the runtime functions hbmalloc and its GPU tests call, and hands
// out its own driver VMM functions through cudaGetDriverEntryPointByVersion.
// It runs on host memory, so the cuda backend executes where there is no GPU:
//
// * physical allocations (cuMemCreate) are memfd files, mapped with
//   MAP_SHARED|MAP_FIXED into reservations (cuMemAddressReserve: PROT_NONE),
//   so two mappings of one handle really alias, in one process or, exported
//   as a descriptor (cuMemExportToShareableHandle), in two;
// * cuMemSetAccess becomes the pages' protection: memory never granted
//   faults, and memset / memcpy check it first and name the rule;
// * streams are worker threads running their queue in order, with the legacy
//   default stream's ordering; events complete when their stream gets there;
// * every call is checked against the rules of the CUDA runtime and driver
//   API references (each violation names its rule and reference) and, unless
//   a test asks violations to be returned, aborts the process.
//
// Configured by HBM_CUDA_DOUBLE="devices=N,capacity=BYTES,granularity=BYTES"
// (defaults 2 devices, 4 GiB, 2 MiB); controlled by tests through the
// hbm_double_* functions (cuda_double.h).
#include "cuda_double.h"

#include <cuda.h>
#include <cuda_runtime_api.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

// ---- configuration and violations ---------------------------------------------

struct Device {
  uint64_t capacity = uint64_t(4) << 30;
  uint64_t granularity = uint64_t(2) << 20;
  uint64_t used = 0;  // cudaMalloc and cuMemCreate bytes held
};

struct Settings {
  int devices = 2;
  uint64_t capacity = uint64_t(4) << 30;
  uint64_t granularity = uint64_t(2) << 20;
};

uint64_t parse_bytes(const std::string& v) {
  char* end = nullptr;
  uint64_t n = std::strtoull(v.c_str(), &end, 10);
  std::string unit = end ? end : "";
  if (unit == "KiB") n <<= 10;
  else if (unit == "MiB") n <<= 20;
  else if (unit == "GiB") n <<= 30;
  return n;
}

Settings read_settings() {
  Settings s;
  const char* env = std::getenv("HBM_CUDA_DOUBLE");
  std::string text = env ? env : "";
  size_t at = 0;
  while (at < text.size()) {
    size_t comma = text.find(',', at);
    std::string item = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    at = comma == std::string::npos ? text.size() : comma + 1;
    size_t eq = item.find('=');
    if (eq == std::string::npos) continue;
    std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "devices") s.devices = std::atoi(value.c_str());
    else if (key == "capacity") s.capacity = parse_bytes(value);
    else if (key == "granularity") s.granularity = parse_bytes(value);
  }
  return s;
}

// The state is never destroyed: stream workers are detached threads that may
// still wait on it while the process exits.
std::mutex& g_mu = *new std::mutex;  // guards all the state
std::condition_variable& g_cv = *new std::condition_variable;
std::vector<Device>& g_devices = *new std::vector<Device>;
std::atomic<bool> g_return_violations{false};
std::atomic<uint64_t> g_violations{0};
std::string& g_last_violation = *new std::string;
thread_local int t_current = 0;
thread_local cudaError_t t_last_error = cudaSuccess;

void init_devices() {
  static std::once_flag once;
  std::call_once(once, [] {
    Settings s = read_settings();
    g_devices.assign(size_t(std::clamp(s.devices, 0, 64)), Device{s.capacity, s.granularity, 0});  // access masks hold 64
  });
}

// A rule of the API reference broken by the caller: abort naming it, or (for
// tests of the double) count it and let the call return an error.
bool violated(const char* call, const char* rule, const char* reference, const std::string& detail) {
  std::string text = std::string("cuda double: ") + call + " broke a rule: " + rule + " (" + reference + "): " + detail;
  ++g_violations;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_last_violation = text;
  }
  if (!g_return_violations.load()) {
    std::fprintf(stderr, "%s\n", text.c_str());
    std::abort();
  }
  return true;
}

// ---- faults on request ----------------------------------------------------------

struct Fault {
  uint64_t countdown;  // the calls it lets pass, plus one
  uint64_t times;      // calls it fails from then on
  int error;
};
std::map<std::string, Fault>& g_faults = *new std::map<std::string, Fault>;

// The error a test asked `call` to fail with now, or 0.
int injected(const char* call) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_faults.find(call);
  if (it == g_faults.end()) return 0;
  if (it->second.countdown > 1) {
    --it->second.countdown;
    return 0;
  }
  int e = it->second.error;
  if (--it->second.times == 0) g_faults.erase(it);
  return e;
}

bool device_ok(int d) { return d >= 0 && size_t(d) < g_devices.size(); }

cudaError_t fail(cudaError_t e) {
  t_last_error = e;
  return e;
}

// ---- streams and events ---------------------------------------------------------

struct Stream;
using StreamRef = std::shared_ptr<Stream>;

struct Op {
  std::function<void()> run;
  std::vector<std::pair<StreamRef, uint64_t>> after;  // (stream, ops it must have completed)
};

struct Stream {
  int device = 0;
  bool is_default = false;
  std::deque<Op> queue;
  uint64_t enqueued = 0, completed = 0;
  bool stop = false;
};

auto& g_streams = *new std::unordered_map<uintptr_t, StreamRef>;  // handle -> stream
auto& g_default = *new std::vector<StreamRef>;                     // per device

bool ready(const Op& op) {
  for (const auto& [s, n] : op.after)
    if (s->completed < n) return false;
  return true;
}

void work(StreamRef s) {
  std::unique_lock<std::mutex> lock(g_mu);
  while (true) {
    g_cv.wait(lock, [&] { return s->stop || (!s->queue.empty() && ready(s->queue.front())); });
    if (s->queue.empty() && s->stop) return;
    if (s->queue.empty()) continue;
    Op op = std::move(s->queue.front());
    s->queue.pop_front();
    lock.unlock();
    op.run();
    lock.lock();
    ++s->completed;
    g_cv.notify_all();
  }
}

StreamRef new_stream(int device, bool is_default) {
  auto s = std::make_shared<Stream>();
  s->device = device;
  s->is_default = is_default;
  std::thread(work, s).detach();  // it ends when the stream is destroyed
  return s;
}

// The stream a handle names (under g_mu); nullptr for an unknown handle.
// 0 and cudaStreamLegacy are the current device's legacy default stream.
StreamRef stream_of(cudaStream_t handle) {
  init_devices();
  if (handle == nullptr || handle == cudaStreamLegacy || handle == cudaStreamPerThread) {
    if (!device_ok(t_current)) return nullptr;
    if (g_default.size() < g_devices.size()) g_default.resize(g_devices.size());
    StreamRef& d = g_default[size_t(t_current)];
    if (!d) d = new_stream(t_current, true);
    return d;
  }
  auto it = g_streams.find(reinterpret_cast<uintptr_t>(handle));
  return it == g_streams.end() ? nullptr : it->second;
}

// Queues `run` on s (under g_mu) with the legacy default stream's ordering:
// default-stream work waits for all earlier work of the device's streams, and
// a stream's work waits for earlier default-stream work.
void enqueue(const StreamRef& s, std::function<void()> run) {
  Op op{std::move(run), {}};
  if (s->is_default) {
    for (auto& [h, other] : g_streams)
      if (other->device == s->device) op.after.emplace_back(other, other->enqueued);
  } else if (size_t(s->device) < g_default.size() && g_default[size_t(s->device)]) {
    StreamRef d = g_default[size_t(s->device)];
    op.after.emplace_back(d, d->enqueued);
  }
  s->queue.push_back(std::move(op));
  ++s->enqueued;
  g_cv.notify_all();
}

// Waits (holding `lock` on g_mu) until s has completed all it had queued.
void drain(std::unique_lock<std::mutex>& lock, const StreamRef& s) {
  const uint64_t target = s->enqueued;
  g_cv.wait(lock, [&] { return s->completed >= target; });
}

void drain_device(std::unique_lock<std::mutex>& lock, int device) {
  std::vector<StreamRef> all;
  for (auto& [h, s] : g_streams)
    if (s->device == device) all.push_back(s);
  if (size_t(device) < g_default.size() && g_default[size_t(device)]) all.push_back(g_default[size_t(device)]);
  for (auto& s : all) drain(lock, s);
}

struct Event {
  int device = 0;
  bool recorded = false;
  uint64_t generation = 0;
  bool done = false;
};
auto& g_events = *new std::unordered_map<uintptr_t, std::shared_ptr<Event>>;
uint64_t g_next_handle = 0x1000;  // streams and events: fake handles, never 0, 1 or 2

// ---- memory ---------------------------------------------------------------------

struct Plain {  // cudaMalloc, or cudaIpcOpenMemHandle
  uint64_t size;
  int device;
  int fd = -1;            // a memfd, so that another process can open it (cudaIpcGetMemHandle)
  bool opened = false;    // another process's, opened here: closed with cudaIpcCloseMemHandle
};
// What a cudaIpcMemHandle_t holds here: enough for another process to open
// the exporter's memfd through /proc.
struct IpcWire {
  char magic[8];
  int32_t pid;
  int32_t fd;
  uint64_t size;
};
constexpr char kIpcMagic[8] = "hbmdbl1";
static_assert(sizeof(IpcWire) <= sizeof(cudaIpcMemHandle_t::reserved));
struct Physical {  // cuMemCreate, or cuMemImportFromShareableHandle
  int fd;
  uint64_t size;
  int device;
  int mappings = 0;
  bool shareable = false;  // created asking for POSIX file descriptor handles
  bool imported = false;   // another process's memory: counts against no device here
};
struct Reservation {
  uint64_t size;
  uint64_t mapped_bytes = 0;
};
struct Mapping {
  uint64_t size;
  uint64_t handle;
  int device;
  uint64_t access = 0;  // a bit per device granted read-write access
};
auto& g_plain = *new std::map<uintptr_t, Plain>;
auto& g_physical = *new std::unordered_map<uint64_t, Physical>;
auto& g_reservations = *new std::map<uintptr_t, Reservation>;
auto& g_mappings = *new std::map<uintptr_t, Mapping>;
uint64_t g_next_physical = 1;
// Runtime peer access (cudaDeviceEnablePeerAccess): bit o of g_peers[a] says
// device a may reach device o's cudaMalloc memory.
auto& g_peers = *new std::vector<uint64_t>(64, 0);

template <typename M>
typename M::iterator containing(M& m, uintptr_t addr) {
  auto it = m.upper_bound(addr);
  if (it == m.begin()) return m.end();
  --it;
  return addr < it->first + it->second.size ? it : m.end();
}

// Whether device `by` may touch [p, p + n) (under g_mu): a cudaMalloc block
// of its own or of a peer it enabled, or mappings that granted it access,
// without a hole. `by` -1: a copy, which the owner does (any access granted).
// Sets `device` to the memory's device.
bool accessible(uintptr_t p, uint64_t n, int by, int& device, std::string& why) {
  if (auto it = containing(g_plain, p); it != g_plain.end()) {
    device = it->second.device;
    if (p + n > it->first + it->second.size) {
      why = "runs past the end of its cudaMalloc block";
      return false;
    }
    if (by >= 0 && by != device && !(g_peers[size_t(by)] >> device & 1)) {
      why = "device " + std::to_string(by) + " has no peer access to device " + std::to_string(device) +
            " (cudaDeviceEnablePeerAccess)";
      return false;
    }
    return true;
  }
  uintptr_t at = p;
  while (at < p + n) {
    auto it = containing(g_mappings, at);
    if (it == g_mappings.end()) {
      why = "byte " + std::to_string(at - p) + " is not mapped device memory";
      return false;
    }
    if (it->second.access == 0) {
      why = "byte " + std::to_string(at - p) + " is mapped but was never granted access";
      return false;
    }
    if (by >= 0 && !(it->second.access >> by & 1)) {
      why = "byte " + std::to_string(at - p) + " is mapped on device " + std::to_string(it->second.device) +
            " and device " + std::to_string(by) + " was never granted access to it";
      return false;
    }
    device = it->second.device;
    at = it->first + it->second.size;
  }
  return true;
}

// ---- the driver's VMM functions (reached through the entry point table) ----------

CUresult dbl_cuDeviceGetAttribute(int* value, CUdevice_attribute attr, CUdevice dev) {
  init_devices();
  if (value == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!device_ok(dev) && violated("cuDeviceGetAttribute", "a device ordinal is below the device count",
                                  "CUDA Driver API, cuDeviceGetAttribute", "device " + std::to_string(dev)))
    return CUDA_ERROR_INVALID_DEVICE;
  *value = attr == CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED ||
                   attr == CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED
               ? 1
               : 0;
  return CUDA_SUCCESS;
}

CUresult dbl_cuMemGetAllocationGranularity(size_t* granularity, const CUmemAllocationProp* prop,
                                          CUmemAllocationGranularity_flags) {
  init_devices();
  if (granularity == nullptr || prop == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE || !device_ok(prop->location.id)) {
    violated("cuMemGetAllocationGranularity", "the location is a device below the device count",
             "CUDA Driver API, CUmemAllocationProp", "location id " + std::to_string(prop->location.id));
    return CUDA_ERROR_INVALID_DEVICE;
  }
  *granularity = g_devices[size_t(prop->location.id)].granularity;
  return CUDA_SUCCESS;
}

uint64_t granularity_of(int device) { return g_devices[size_t(device)].granularity; }
// The smallest granularity of all devices: what reservations are checked against.
uint64_t min_granularity() {
  uint64_t g = UINT64_MAX;
  for (const Device& d : g_devices) g = std::min(g, d.granularity);
  return g == UINT64_MAX ? 4096 : g;
}

CUresult dbl_cuMemAddressReserve(CUdeviceptr* ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                 unsigned long long flags) {
  init_devices();
  if (int e = injected("cuMemAddressReserve")) return CUresult(e);
  const uint64_t g = min_granularity();
  if (ptr == nullptr || size == 0 || size % g != 0) {
    violated("cuMemAddressReserve", "size is a multiple of the allocation granularity",
             "CUDA Driver API, cuMemAddressReserve", "size " + std::to_string(size));
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (flags != 0 || addr != 0) {
    violated("cuMemAddressReserve", "flags are 0 (and hbmalloc asks no fixed address)",
             "CUDA Driver API, cuMemAddressReserve", "flags " + std::to_string(flags));
    return CUDA_ERROR_INVALID_VALUE;
  }
  const uint64_t align = std::max<uint64_t>(alignment ? alignment : g, g);
  void* raw = mmap(nullptr, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  uintptr_t base = (reinterpret_cast<uintptr_t>(raw) + align - 1) / align * align;
  // Trim the slack on both sides so the reservation is exactly [base, base + size).
  if (base > reinterpret_cast<uintptr_t>(raw)) munmap(raw, base - reinterpret_cast<uintptr_t>(raw));
  uintptr_t end = reinterpret_cast<uintptr_t>(raw) + size + align;
  if (end > base + size) munmap(reinterpret_cast<void*>(base + size), end - base - size);
  std::lock_guard<std::mutex> lock(g_mu);
  g_reservations[base] = Reservation{size, 0};
  *ptr = CUdeviceptr(base);
  return CUDA_SUCCESS;
}

CUresult dbl_cuMemAddressFree(CUdeviceptr ptr, size_t size) {
  std::unique_lock<std::mutex> lock(g_mu);
  auto it = g_reservations.find(uintptr_t(ptr));
  if (it == g_reservations.end() || it->second.size != size) {
    lock.unlock();
    violated("cuMemAddressFree", "the range is one whole reservation made by cuMemAddressReserve",
             "CUDA Driver API, cuMemAddressFree", "ptr " + std::to_string(ptr) + " size " + std::to_string(size));
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (it->second.mapped_bytes != 0) {
    const uint64_t mapped = it->second.mapped_bytes;
    lock.unlock();
    violated("cuMemAddressFree", "a reservation is freed only when nothing in it is mapped",
             "CUDA Driver API, cuMemAddressFree / cuMemUnmap",
             std::to_string(mapped) + " bytes still mapped at " + std::to_string(ptr));
    return CUDA_ERROR_INVALID_VALUE;
  }
  g_reservations.erase(it);
  munmap(reinterpret_cast<void*>(ptr), size);
  return CUDA_SUCCESS;
}

CUresult dbl_cuMemCreate(CUmemGenericAllocationHandle* handle, size_t size, const CUmemAllocationProp* prop,
                         unsigned long long flags) {
  init_devices();
  if (handle == nullptr || prop == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE || !device_ok(prop->location.id)) {
    violated("cuMemCreate", "the location is a device below the device count", "CUDA Driver API, cuMemCreate",
             "location id " + std::to_string(prop->location.id));
    return CUDA_ERROR_INVALID_DEVICE;
  }
  const int d = prop->location.id;
  if (size == 0 || size % granularity_of(d) != 0) {
    violated("cuMemCreate", "size is a multiple of the granularity cuMemGetAllocationGranularity gives",
             "CUDA Driver API, cuMemCreate", "size " + std::to_string(size));
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (flags != 0) {
    violated("cuMemCreate", "flags are 0", "CUDA Driver API, cuMemCreate", std::to_string(flags));
    return CUDA_ERROR_INVALID_VALUE;
  }
  const bool shareable = prop->requestedHandleTypes == CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  if (!shareable && prop->requestedHandleTypes != CU_MEM_HANDLE_TYPE_NONE) {
    violated("cuMemCreate", "requestedHandleTypes is a type the device supports (here: none or POSIX file descriptor)",
             "CUDA Driver API, CUmemAllocationProp", std::to_string(int(prop->requestedHandleTypes)));
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (int e = injected("cuMemCreate")) return CUresult(e);
  std::lock_guard<std::mutex> lock(g_mu);
  Device& dev = g_devices[size_t(d)];
  if (dev.used + size > dev.capacity) return CUDA_ERROR_OUT_OF_MEMORY;
  int fd = memfd_create("hbm-cuda-double", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, off_t(size)) != 0) {
    if (fd >= 0) close(fd);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  dev.used += size;
  const uint64_t id = g_next_physical++;
  g_physical[id] = Physical{fd, size, d, 0, shareable, false};
  *handle = id;
  return CUDA_SUCCESS;
}

// The handle's memory as a file descriptor another process can import: a
// duplicate of its memfd, which the caller owns.
CUresult dbl_cuMemExportToShareableHandle(void* shareable, CUmemGenericAllocationHandle handle,
                                          CUmemAllocationHandleType type, unsigned long long flags) {
  if (int e = injected("cuMemExportToShareableHandle")) return CUresult(e);
  std::unique_lock<std::mutex> lock(g_mu);
  auto broke = [&](const char* rule, const std::string& detail) {
    lock.unlock();
    violated("cuMemExportToShareableHandle", rule, "CUDA Driver API, cuMemExportToShareableHandle", detail);
    return CUDA_ERROR_INVALID_VALUE;
  };
  auto it = g_physical.find(handle);
  if (shareable == nullptr || flags != 0) return broke("a place for the handle is given and flags are 0", "");
  if (it == g_physical.end()) return broke("the handle is one cuMemCreate returned", "handle " + std::to_string(handle));
  if (type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR || !it->second.shareable)
    return broke("the handle type was among the requestedHandleTypes the handle was created with",
                 "handle " + std::to_string(handle) + (it->second.shareable ? "" : " was created with none"));
  const int fd = dup(it->second.fd);
  if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
  *static_cast<int*>(shareable) = fd;
  return CUDA_SUCCESS;
}

// A handle to memory another process exported; the descriptor stays the caller's.
CUresult dbl_cuMemImportFromShareableHandle(CUmemGenericAllocationHandle* handle, void* os_handle,
                                            CUmemAllocationHandleType type) {
  init_devices();
  if (int e = injected("cuMemImportFromShareableHandle")) return CUresult(e);
  const int fd = int(reinterpret_cast<uintptr_t>(os_handle));
  struct stat st {};
  if (handle == nullptr || type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR || fstat(fd, &st) != 0 || st.st_size <= 0) {
    violated("cuMemImportFromShareableHandle", "the handle is a POSIX file descriptor cuMemExportToShareableHandle gave",
             "CUDA Driver API, cuMemImportFromShareableHandle", "descriptor " + std::to_string(fd));
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (!device_ok(t_current)) return CUDA_ERROR_INVALID_DEVICE;
  const int own = dup(fd);
  if (own < 0) return CUDA_ERROR_OUT_OF_MEMORY;
  std::lock_guard<std::mutex> lock(g_mu);
  const uint64_t id = g_next_physical++;
  g_physical[id] = Physical{own, uint64_t(st.st_size), t_current, 0, true, true};
  *handle = id;
  return CUDA_SUCCESS;
}

CUresult dbl_cuMemRelease(CUmemGenericAllocationHandle handle) {
  std::unique_lock<std::mutex> lock(g_mu);
  auto it = g_physical.find(handle);
  if (it == g_physical.end()) {
    lock.unlock();
    violated("cuMemRelease", "the handle is one cuMemCreate returned and not yet released",
             "CUDA Driver API, cuMemRelease", "handle " + std::to_string(handle));
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (it->second.mappings > 0) {
    lock.unlock();
    // CUDA frees the memory only at the last unmap: releasing first would
    // leave reserved memory hbmalloc no longer counts.
    violated("cuMemRelease", "a handle is released only once unmapped (its memory is freed at the last unmap)",
             "CUDA Driver API, cuMemRelease / cuMemUnmap", "handle " + std::to_string(handle) + " still mapped");
    return CUDA_ERROR_INVALID_VALUE;
  }
  close(it->second.fd);
  if (!it->second.imported) g_devices[size_t(it->second.device)].used -= it->second.size;
  g_physical.erase(it);
  return CUDA_SUCCESS;
}

CUresult dbl_cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                      unsigned long long flags) {
  if (int e = injected("cuMemMap")) return CUresult(e);
  std::unique_lock<std::mutex> lock(g_mu);
  auto broke = [&](const char* rule, const std::string& detail) {
    lock.unlock();
    violated("cuMemMap", rule, "CUDA Driver API, cuMemMap", detail);
    return CUDA_ERROR_INVALID_VALUE;
  };
  auto ph = g_physical.find(handle);
  if (ph == g_physical.end()) return broke("the handle is one cuMemCreate returned", "handle " + std::to_string(handle));
  if (offset != 0 || flags != 0) return broke("offset and flags are 0", "offset " + std::to_string(offset));
  if (size != ph->second.size)
    return broke("the mapping covers the whole handle (hbmalloc maps each granule whole)",
                 "size " + std::to_string(size) + " of a " + std::to_string(ph->second.size) + "-byte handle");
  const uint64_t g = granularity_of(ph->second.device);
  if (ptr % g != 0) return broke("ptr is aligned to the granularity", "ptr " + std::to_string(ptr));
  auto res = containing(g_reservations, uintptr_t(ptr));
  if (res == g_reservations.end() || ptr + size > res->first + res->second.size)
    return broke("the range lies inside one reservation", "ptr " + std::to_string(ptr));
  auto next = g_mappings.lower_bound(uintptr_t(ptr));
  if ((next != g_mappings.end() && next->first < ptr + size) || containing(g_mappings, uintptr_t(ptr)) != g_mappings.end())
    return broke("the range is not mapped already", "ptr " + std::to_string(ptr));
  void* at = mmap(reinterpret_cast<void*>(ptr), size, PROT_NONE, MAP_SHARED | MAP_FIXED, ph->second.fd, 0);
  if (at == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  ++ph->second.mappings;
  res->second.mapped_bytes += size;
  g_mappings[uintptr_t(ptr)] = Mapping{size, handle, ph->second.device, 0};
  return CUDA_SUCCESS;
}

CUresult dbl_cuMemUnmap(CUdeviceptr ptr, size_t size) {
  if (int e = injected("cuMemUnmap")) return CUresult(e);
  std::unique_lock<std::mutex> lock(g_mu);
  // The range is whole mappings, one after the other.
  auto first = g_mappings.find(uintptr_t(ptr));
  uintptr_t at = uintptr_t(ptr);
  auto it = first;
  while (first != g_mappings.end() && at < ptr + size && it != g_mappings.end() && it->first == at) {
    at += it->second.size;
    ++it;
  }
  if (first == g_mappings.end() || at != ptr + size) {
    lock.unlock();
    violated("cuMemUnmap", "the range is the entire address range of its mappings, never a part of one",
             "CUDA Driver API, cuMemUnmap", "ptr " + std::to_string(ptr) + " size " + std::to_string(size));
    return CUDA_ERROR_INVALID_VALUE;
  }
  auto res = containing(g_reservations, uintptr_t(ptr));
  for (auto m = first; m != it; ++m) {
    mmap(reinterpret_cast<void*>(m->first), m->second.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
         -1, 0);
    --g_physical[m->second.handle].mappings;
    res->second.mapped_bytes -= m->second.size;
  }
  g_mappings.erase(first, it);
  return CUDA_SUCCESS;
}

CUresult dbl_cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc* desc, size_t count) {
  if (int e = injected("cuMemSetAccess")) return CUresult(e);
  std::unique_lock<std::mutex> lock(g_mu);
  auto broke = [&](const char* rule, const std::string& detail) {
    lock.unlock();
    violated("cuMemSetAccess", rule, "CUDA Driver API, cuMemSetAccess", detail);
    return CUDA_ERROR_INVALID_VALUE;
  };
  if (desc == nullptr || count == 0) return broke("at least one access descriptor", "none given");
  for (size_t i = 0; i < count; ++i)
    if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || !device_ok(desc[i].location.id))
      return broke("each descriptor names a device below the device count",
                   "location id " + std::to_string(desc[i].location.id));
  std::vector<std::map<uintptr_t, Mapping>::iterator> covered;
  uintptr_t at = uintptr_t(ptr);
  while (at < ptr + size) {
    auto m = containing(g_mappings, at);
    if (m == g_mappings.end())
      return broke("the whole range is mapped", "byte " + std::to_string(at - ptr) + " of the range is not");
    covered.push_back(m);
    at = m->first + m->second.size;
  }
  if (at != ptr + size || (!covered.empty() && covered.front()->first != uintptr_t(ptr)))
    return broke("the range starts and ends on mapping boundaries", "ptr " + std::to_string(ptr));
  uint64_t mask = 0;
  for (size_t i = 0; i < count; ++i)
    if (desc[i].flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE) mask |= uint64_t(1) << desc[i].location.id;
  for (auto& m : covered) {
    m->second.access = mask;
    mprotect(reinterpret_cast<void*>(m->first), m->second.size, mask ? PROT_READ | PROT_WRITE : PROT_NONE);
  }
  return CUDA_SUCCESS;
}

CUresult dbl_cuGetErrorString(CUresult error, const char** text) {
  if (text == nullptr) return CUDA_ERROR_INVALID_VALUE;
  switch (error) {
    case CUDA_SUCCESS: *text = "no error"; break;
    case CUDA_ERROR_OUT_OF_MEMORY: *text = "out of memory"; break;
    case CUDA_ERROR_INVALID_VALUE: *text = "invalid argument"; break;
    case CUDA_ERROR_INVALID_DEVICE: *text = "invalid device ordinal"; break;
    default: *text = "unknown error"; break;
  }
  return CUDA_SUCCESS;
}

struct EntryPoint {
  const char* name;
  void* fn;
};
const EntryPoint kEntryPoints[] = {
    {"cuDeviceGetAttribute", reinterpret_cast<void*>(&dbl_cuDeviceGetAttribute)},
    {"cuMemGetAllocationGranularity", reinterpret_cast<void*>(&dbl_cuMemGetAllocationGranularity)},
    {"cuMemAddressReserve", reinterpret_cast<void*>(&dbl_cuMemAddressReserve)},
    {"cuMemAddressFree", reinterpret_cast<void*>(&dbl_cuMemAddressFree)},
    {"cuMemCreate", reinterpret_cast<void*>(&dbl_cuMemCreate)},
    {"cuMemRelease", reinterpret_cast<void*>(&dbl_cuMemRelease)},
    {"cuMemMap", reinterpret_cast<void*>(&dbl_cuMemMap)},
    {"cuMemUnmap", reinterpret_cast<void*>(&dbl_cuMemUnmap)},
    {"cuMemSetAccess", reinterpret_cast<void*>(&dbl_cuMemSetAccess)},
    {"cuGetErrorString", reinterpret_cast<void*>(&dbl_cuGetErrorString)},
    {"cuMemExportToShareableHandle", reinterpret_cast<void*>(&dbl_cuMemExportToShareableHandle)},
    {"cuMemImportFromShareableHandle", reinterpret_cast<void*>(&dbl_cuMemImportFromShareableHandle)},
};

}  // namespace

// ---- the runtime API ---------------------------------------------------------------

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  init_devices();
  if (count == nullptr) return fail(cudaErrorInvalidValue);
  *count = int(g_devices.size());
  return g_devices.empty() ? fail(cudaErrorNoDevice) : cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  init_devices();
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  if (g_devices.empty()) return fail(cudaErrorNoDevice);
  *device = t_current;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  init_devices();
  if (!device_ok(device)) return fail(g_devices.empty() ? cudaErrorNoDevice : cudaErrorInvalidDevice);
  t_current = device;
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorPeerAccessAlreadyEnabled: return "cudaErrorPeerAccessAlreadyEnabled";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorPeerAccessAlreadyEnabled: return "peer access is already enabled";
    default: return "unknown error";
  }
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  init_devices();
  if (free_bytes == nullptr || total == nullptr) return fail(cudaErrorInvalidValue);
  if (!device_ok(t_current)) return fail(cudaErrorNoDevice);
  std::lock_guard<std::mutex> lock(g_mu);
  const Device& d = g_devices[size_t(t_current)];
  *total = d.capacity;
  *free_bytes = d.capacity - d.used;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t size) {
  init_devices();
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (!device_ok(t_current)) return fail(cudaErrorNoDevice);
  if (size == 0) return cudaSuccess;
  if (int e = injected("cudaMalloc")) return fail(cudaError_t(e));
  std::lock_guard<std::mutex> lock(g_mu);
  Device& d = g_devices[size_t(t_current)];
  if (d.used + size > d.capacity) return fail(cudaErrorMemoryAllocation);
  int fd = memfd_create("hbm-cuda-double-plain", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, off_t(size)) != 0) {
    if (fd >= 0) close(fd);
    return fail(cudaErrorMemoryAllocation);
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return fail(cudaErrorMemoryAllocation);
  }
  d.used += size;
  g_plain[reinterpret_cast<uintptr_t>(p)] = Plain{size, t_current, fd, false};
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  std::unique_lock<std::mutex> lock(g_mu);
  auto it = g_plain.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == g_plain.end()) {
    lock.unlock();
    violated("cudaFree", "the pointer is one cudaMalloc returned and not yet freed", "CUDA Runtime API, cudaFree",
             "ptr " + std::to_string(reinterpret_cast<uintptr_t>(ptr)));
    return fail(cudaErrorInvalidValue);
  }
  if (it->second.opened) {
    lock.unlock();
    violated("cudaFree", "memory opened from another process is closed with cudaIpcCloseMemHandle, not freed",
             "CUDA Runtime API, cudaIpcOpenMemHandle", "ptr " + std::to_string(reinterpret_cast<uintptr_t>(ptr)));
    return fail(cudaErrorInvalidValue);
  }
  // cudaFree synchronizes the device: no queued work still uses the block.
  drain_device(lock, it->second.device);
  g_devices[size_t(it->second.device)].used -= it->second.size;
  munmap(ptr, it->second.size);
  close(it->second.fd);
  g_plain.erase(it);
  return cudaSuccess;
}

cudaError_t cudaIpcGetMemHandle(cudaIpcMemHandle_t* handle, void* ptr) {
  std::unique_lock<std::mutex> lock(g_mu);
  auto it = g_plain.find(reinterpret_cast<uintptr_t>(ptr));
  if (handle == nullptr || it == g_plain.end() || it->second.opened) {
    lock.unlock();
    violated("cudaIpcGetMemHandle", "the pointer is the base of an allocation cudaMalloc returned",
             "CUDA Runtime API, cudaIpcGetMemHandle", "ptr " + std::to_string(reinterpret_cast<uintptr_t>(ptr)));
    return fail(cudaErrorInvalidValue);
  }
  IpcWire wire{};
  std::memcpy(wire.magic, kIpcMagic, sizeof wire.magic);
  wire.pid = int32_t(getpid());
  wire.fd = it->second.fd;
  wire.size = it->second.size;
  std::memset(handle, 0, sizeof *handle);
  std::memcpy(handle->reserved, &wire, sizeof wire);
  return cudaSuccess;
}

cudaError_t cudaIpcOpenMemHandle(void** ptr, cudaIpcMemHandle_t handle, unsigned int flags) {
  init_devices();
  IpcWire wire{};
  std::memcpy(&wire, handle.reserved, sizeof wire);
  auto broke = [&](const char* rule, const std::string& detail) {
    violated("cudaIpcOpenMemHandle", rule, "CUDA Runtime API, cudaIpcOpenMemHandle", detail);
    return fail(cudaErrorInvalidValue);
  };
  if (ptr == nullptr || flags != cudaIpcMemLazyEnablePeerAccess)
    return broke("a place for the pointer is given and flags is cudaIpcMemLazyEnablePeerAccess", std::to_string(flags));
  if (std::memcmp(wire.magic, kIpcMagic, sizeof wire.magic) != 0)
    return broke("the handle is one cudaIpcGetMemHandle gave", "unknown handle");
  if (wire.pid == int32_t(getpid()))
    return broke("the handle is opened in another process than the one that exported it", "pid " + std::to_string(wire.pid));
  if (!device_ok(t_current)) return fail(cudaErrorNoDevice);
  const std::string path = "/proc/" + std::to_string(wire.pid) + "/fd/" + std::to_string(wire.fd);
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(cudaErrorInvalidResourceHandle);  // the exporter freed it, or is gone
  void* p = mmap(nullptr, wire.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return fail(cudaErrorMemoryAllocation);
  }
  std::lock_guard<std::mutex> lock(g_mu);
  g_plain[reinterpret_cast<uintptr_t>(p)] = Plain{wire.size, t_current, fd, true};
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaIpcCloseMemHandle(void* ptr) {
  std::unique_lock<std::mutex> lock(g_mu);
  auto it = g_plain.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == g_plain.end() || !it->second.opened) {
    lock.unlock();
    violated("cudaIpcCloseMemHandle", "the pointer is one cudaIpcOpenMemHandle returned",
             "CUDA Runtime API, cudaIpcCloseMemHandle", "ptr " + std::to_string(reinterpret_cast<uintptr_t>(ptr)));
    return fail(cudaErrorInvalidValue);
  }
  drain_device(lock, it->second.device);
  munmap(ptr, it->second.size);
  close(it->second.fd);
  g_plain.erase(it);
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attr, const void* ptr) {
  if (attr == nullptr) return fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_mu);
  *attr = cudaPointerAttributes{};
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  int device = -1;
  if (auto it = containing(g_plain, p); it != g_plain.end()) device = it->second.device;
  else if (auto m = containing(g_mappings, p); m != g_mappings.end()) device = m->second.device;
  attr->type = device >= 0 ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
  attr->device = device >= 0 ? device : 0;
  attr->devicePointer = device >= 0 ? const_cast<void*>(ptr) : nullptr;
  return cudaSuccess;
}

cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned int flags) {
  init_devices();
  if (!device_ok(t_current)) return fail(cudaErrorNoDevice);
  if (flags != 0) {
    violated("cudaDeviceEnablePeerAccess", "flags are 0", "CUDA Runtime API, cudaDeviceEnablePeerAccess",
             std::to_string(flags));
    return fail(cudaErrorInvalidValue);
  }
  if (!device_ok(peer) || peer == t_current) return fail(cudaErrorInvalidDevice);
  std::lock_guard<std::mutex> lock(g_mu);
  uint64_t& mine = g_peers[size_t(t_current)];
  if (mine >> peer & 1) return fail(cudaErrorPeerAccessAlreadyEnabled);
  mine |= uint64_t(1) << peer;
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  init_devices();
  if (stream == nullptr) return fail(cudaErrorInvalidValue);
  if (!device_ok(t_current)) return fail(cudaErrorNoDevice);
  std::lock_guard<std::mutex> lock(g_mu);
  const uintptr_t h = g_next_handle++;
  g_streams[h] = new_stream(t_current, false);
  *stream = reinterpret_cast<cudaStream_t>(h);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::unique_lock<std::mutex> lock(g_mu);
  auto it = g_streams.find(reinterpret_cast<uintptr_t>(stream));
  if (it == g_streams.end()) {
    lock.unlock();
    violated("cudaStreamDestroy", "the stream is one cudaStreamCreate returned", "CUDA Runtime API, cudaStreamDestroy",
             "stream " + std::to_string(reinterpret_cast<uintptr_t>(stream)));
    return fail(cudaErrorInvalidResourceHandle);
  }
  StreamRef s = it->second;
  drain(lock, s);  // CUDA lets queued work finish before the stream goes
  g_streams.erase(it);
  s->stop = true;
  g_cv.notify_all();
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::unique_lock<std::mutex> lock(g_mu);
  StreamRef s = stream_of(stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  drain(lock, s);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  init_devices();
  std::unique_lock<std::mutex> lock(g_mu);
  if (!device_ok(t_current)) return fail(cudaErrorNoDevice);
  drain_device(lock, t_current);
  return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* data) {
  std::lock_guard<std::mutex> lock(g_mu);
  StreamRef s = stream_of(stream);
  if (!s || fn == nullptr) return fail(cudaErrorInvalidValue);
  enqueue(s, [fn, data] { fn(data); });
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  init_devices();
  if (event == nullptr) return fail(cudaErrorInvalidValue);
  if (!device_ok(t_current)) return fail(cudaErrorNoDevice);
  std::lock_guard<std::mutex> lock(g_mu);
  const uintptr_t h = g_next_handle++;
  auto e = std::make_shared<Event>();
  e->device = t_current;
  g_events[h] = e;
  *event = reinterpret_cast<cudaEvent_t>(h);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::unique_lock<std::mutex> lock(g_mu);
  if (g_events.erase(reinterpret_cast<uintptr_t>(event)) == 0) {
    lock.unlock();
    violated("cudaEventDestroy", "the event is one cudaEventCreate returned and not yet destroyed",
             "CUDA Runtime API, cudaEventDestroy", "event " + std::to_string(reinterpret_cast<uintptr_t>(event)));
    return fail(cudaErrorInvalidResourceHandle);
  }
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (int e = injected("cudaEventRecord")) return fail(cudaError_t(e));
  std::unique_lock<std::mutex> lock(g_mu);
  auto it = g_events.find(reinterpret_cast<uintptr_t>(event));
  StreamRef s = stream_of(stream);
  if (it == g_events.end() || !s) {
    lock.unlock();
    violated("cudaEventRecord", "the event and stream exist", "CUDA Runtime API, cudaEventRecord",
             "event " + std::to_string(reinterpret_cast<uintptr_t>(event)));
    return fail(cudaErrorInvalidResourceHandle);
  }
  std::shared_ptr<Event> e = it->second;
  if (e->device != s->device) {
    lock.unlock();
    violated("cudaEventRecord", "the event and the stream belong to the same device",
             "CUDA Runtime API, cudaEventRecord",
             "event of device " + std::to_string(e->device) + " on a stream of device " + std::to_string(s->device));
    return fail(cudaErrorInvalidResourceHandle);
  }
  e->recorded = true;
  e->done = false;
  const uint64_t generation = ++e->generation;
  enqueue(s, [e, generation] {
    std::lock_guard<std::mutex> inner(g_mu);
    if (e->generation == generation) e->done = true;
  });
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (int e = injected("cudaEventQuery")) return fail(cudaError_t(e));
  std::unique_lock<std::mutex> lock(g_mu);
  auto it = g_events.find(reinterpret_cast<uintptr_t>(event));
  if (it == g_events.end()) {
    lock.unlock();
    violated("cudaEventQuery", "the event exists", "CUDA Runtime API, cudaEventQuery",
             "event " + std::to_string(reinterpret_cast<uintptr_t>(event)));
    return fail(cudaErrorInvalidResourceHandle);
  }
  if (!it->second->recorded) {
    lock.unlock();
    // CUDA answers cudaSuccess for an event never recorded: a caller relying
    // on it would take "nothing recorded" for "work done".
    violated("cudaEventQuery", "the event was recorded before it is queried", "CUDA Runtime API, cudaEventQuery",
             "event " + std::to_string(reinterpret_cast<uintptr_t>(event)) + " was never recorded");
    return fail(cudaErrorInvalidResourceHandle);
  }
  return it->second->done ? cudaSuccess : cudaErrorNotReady;
}

// Device memory writes and reads: checked, then done on the stream (memset)
// or after the legacy default stream's earlier work (the blocking calls).
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t stream) {
  std::unique_lock<std::mutex> lock(g_mu);
  StreamRef s = stream_of(stream);
  int device = -1;
  std::string why;
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  // A memset is work of the stream's device: that device must reach the memory.
  if (count > 0 && !accessible(reinterpret_cast<uintptr_t>(ptr), count, s->device, device, why)) {
    lock.unlock();
    violated("cudaMemsetAsync", "device memory is touched only by devices granted access to it",
             "CUDA Driver API, cuMemSetAccess; CUDA Runtime API, cudaDeviceEnablePeerAccess", why);
    return fail(cudaErrorIllegalAddress);
  }
  enqueue(s, [ptr, value, count] { std::memset(ptr, value, count); });
  return cudaSuccess;
}

cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  if (cudaError_t e = cudaMemsetAsync(ptr, value, count, nullptr); e != cudaSuccess) return e;
  return cudaStreamSynchronize(nullptr);
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  std::unique_lock<std::mutex> lock(g_mu);
  int device = -1;
  std::string why;
  const void* dev = kind == cudaMemcpyDeviceToHost ? src : dst;
  if (count > 0 && kind != cudaMemcpyHostToHost && !accessible(reinterpret_cast<uintptr_t>(dev), count, -1, device, why)) {
    lock.unlock();
    violated("cudaMemcpy", "device memory is touched only where it is mapped and access was granted",
             "CUDA Driver API, cuMemSetAccess", why);
    return fail(cudaErrorIllegalAddress);
  }
  StreamRef s = stream_of(nullptr);
  if (!s) return fail(cudaErrorNoDevice);
  enqueue(s, [dst, src, count] { std::memcpy(dst, src, count); });
  drain(lock, s);
  return cudaSuccess;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** fn, unsigned int, unsigned long long,
                                             cudaDriverEntryPointQueryResult* status) {
  if (symbol == nullptr || fn == nullptr) return fail(cudaErrorInvalidValue);
  for (const EntryPoint& e : kEntryPoints)
    if (std::strcmp(e.name, symbol) == 0) {
      *fn = e.fn;
      if (status) *status = cudaDriverEntryPointSuccess;
      return cudaSuccess;
    }
  *fn = nullptr;
  if (status) *status = cudaDriverEntryPointSymbolNotFound;
  return cudaSuccess;
}

// ---- control, for tests ----------------------------------------------------------

void hbm_double_fail(const char* call, uint64_t nth, uint64_t times, int error) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (times == 0) g_faults.erase(call);
  else g_faults[call] = Fault{nth == 0 ? 1 : nth, times, error};
}

void hbm_double_return_violations(int on) { g_return_violations.store(on != 0); }

uint64_t hbm_double_violations(void) { return g_violations.load(); }

const char* hbm_double_last_violation(void) {
  static thread_local std::string copy;
  std::lock_guard<std::mutex> lock(g_mu);
  copy = g_last_violation;
  return copy.c_str();
}

uint64_t hbm_double_used(int device) {
  init_devices();
  std::lock_guard<std::mutex> lock(g_mu);
  return device_ok(device) ? g_devices[size_t(device)].used : 0;
}

uint64_t hbm_double_handles(void) {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_physical.size();
}

uint64_t hbm_double_mappings(void) {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_mappings.size();
}

}  // extern "C"

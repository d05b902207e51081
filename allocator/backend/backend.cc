#include "backend/backend.h"

#include <chrono>
#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {
[[noreturn]] void no_vmm(const Backend& b, const char* op) {
  throw Error(ErrorCode::kBackend,
              std::string(b.name()) + ": " + op + ": this backend has no virtual memory management (vmm_granularity 0)");
}
[[noreturn]] void no_sharing(const Backend& b, const char* op) {
  throw Error(ErrorCode::kBackend, std::string(b.name()) + ": " + op +
                                       ": this backend cannot share memory with other processes (the cuda backend can)");
}
}  // namespace

std::optional<int64_t> Backend::now_us() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

IpcBlock Backend::share_range(void*, uint64_t) { no_sharing(*this, "share_range"); }
void* Backend::open_shared(const IpcBlock&) { no_sharing(*this, "open_shared"); }
void Backend::close_shared(void*) { no_sharing(*this, "close_shared"); }
void* Backend::reserve_range(uint64_t) { no_vmm(*this, "reserve_range"); }
void Backend::release_range(void*, uint64_t) { no_vmm(*this, "release_range"); }
GranuleId Backend::create_granule(uint64_t) { no_vmm(*this, "create_granule"); }
void Backend::release_granule(GranuleId) { no_vmm(*this, "release_granule"); }
void Backend::map(void*, GranuleId) { no_vmm(*this, "map"); }
void Backend::set_access(void*, uint64_t) { no_vmm(*this, "set_access"); }
void Backend::unmap(void*, uint64_t) { no_vmm(*this, "unmap"); }

GranuleRun Backend::create_granules(uint64_t bytes, size_t n) {
  GranuleRun run;
  for (size_t i = 0; i < n; ++i) {
    const GranuleId id = create_granule(bytes);
    if (id == 0) break;
    if (run.count == 0) run.first = id;
    if (id != run.end()) {
      release_granule(id);
      release_granules(run);
      throw Error(ErrorCode::kBackend, std::string(name()) + ": create_granules: granule ids " +
                                           std::to_string(run.end() - 1) + " and " + std::to_string(id) +
                                           " made one after the other are not consecutive");
    }
    ++run.count;
  }
  return run;
}

void Backend::release_granules(GranuleRun run) {
  for (uint64_t i = 0; i < run.count; ++i) release_granule(run.first + i);
}

void Backend::map_granules(void* addr, GranuleRun run, uint64_t bytes) {
  uint64_t i = 0;
  try {
    for (; i < run.count; ++i) map(static_cast<char*>(addr) + i * bytes, run.first + i);
  } catch (...) {
    // A failure maps nothing: what this call mapped goes again.
    if (i > 0) {
      try {
        unmap(addr, i * bytes);
      } catch (...) {
      }
    }
    throw;
  }
}

}  // namespace hbmalloc

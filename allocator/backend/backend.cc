#include "backend/backend.h"

#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {
[[noreturn]] void no_vmm(const Backend& b, const char* op) {
  throw Error(ErrorCode::kBackend,
              std::string(b.name()) + ": " + op + ": this backend has no virtual memory management (vmm_granularity 0)");
}
}  // namespace

void* Backend::reserve_range(uint64_t) { no_vmm(*this, "reserve_range"); }
void Backend::release_range(void*, uint64_t) { no_vmm(*this, "release_range"); }
GranuleId Backend::create_granule(uint64_t) { no_vmm(*this, "create_granule"); }
void Backend::release_granule(GranuleId) { no_vmm(*this, "release_granule"); }
void Backend::map(void*, GranuleId) { no_vmm(*this, "map"); }
void Backend::set_access(void*, uint64_t) { no_vmm(*this, "set_access"); }
void Backend::unmap(void*, uint64_t) { no_vmm(*this, "unmap"); }

}  // namespace hbmalloc

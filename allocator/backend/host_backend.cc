#include "backend/host_backend.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {

[[noreturn]] void fail(const std::string& call) {
  throw Error(ErrorCode::kBackend, "host: " + call + " failed: " + std::strerror(errno));
}

uint64_t checked_granularity(uint64_t granularity) {
  uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  if (granularity < page || (granularity & (granularity - 1)) != 0 || granularity > (1ull << 30))
    throw Error(ErrorCode::kInvalidArgument, "host: VMM granularity " + std::to_string(granularity) +
                                                 " is not a power of two between the page size (" +
                                                 std::to_string(page) + ") and 1 GiB");
  return granularity;
}

uint64_t address(void* p) { return reinterpret_cast<uint64_t>(p); }

// The file never shrinks but freed ranges give their pages back (punched).
constexpr uint64_t kFileLimit = uint64_t(1) << 46;

}  // namespace

HostBackend::HostBackend(int device, uint64_t capacity, uint64_t granularity)
    : EmulatedBackend(device, capacity), offsets_(0, kFileLimit), vmm_("host", checked_granularity(granularity)) {
  if (device < 0) throw Error(ErrorCode::kInvalidArgument, "host: negative device index");
  fd_ = memfd_create("hbmalloc-host", MFD_CLOEXEC);
  if (fd_ < 0) fail("memfd_create");
}

HostBackend::~HostBackend() {
  // Mappings left behind keep the file alive until they are unmapped; the
  // process owns them (a test's leak shows in its own checks).
  if (fd_ >= 0) close(fd_);
}

void* HostBackend::malloc_segment(uint64_t bytes) {
  if (bytes == 0) throw Error(ErrorCode::kInvalidArgument, "host: zero-byte segment");
  if (!has_room(bytes)) return nullptr;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    if (errno == ENOMEM) return nullptr;
    fail("mmap of a " + std::to_string(bytes) + "-byte segment");
  }
  live_.insert(address(p), bytes);
  used_ += bytes;
  return p;
}

void HostBackend::free_segment(void* ptr, uint64_t bytes) {
  uint64_t* live = ptr == nullptr ? nullptr : live_.find(address(ptr));
  if (live == nullptr || *live != bytes)
    throw Error(ErrorCode::kBackend, "host: free of a segment that is not live (" + std::to_string(address(ptr)) + ")");
  complete_work_before_free();
  if (munmap(ptr, bytes) != 0) fail("munmap of a segment");
  live_.erase_found(live);
  used_ -= bytes;
}

void* HostBackend::reserve_range(uint64_t bytes) {
  vmm_.check_size("reserve_range", bytes);
  const uint64_t align = vmm_.granularity();
  // Over-reserve by one granule and trim, so the range is granule aligned.
  void* p = mmap(nullptr, bytes + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    if (errno == ENOMEM) return nullptr;
    fail("mmap of a " + std::to_string(bytes) + "-byte range");
  }
  uint64_t start = address(p), base = (start + align - 1) / align * align;
  if (base > start) munmap(p, base - start);
  munmap(reinterpret_cast<void*>(base + bytes), start + align - base);  // the rest of the extra granule
  vmm_.add_range(base, bytes);
  return reinterpret_cast<void*>(base);
}

void HostBackend::release_range(void* base, uint64_t bytes) {
  vmm_.remove_range(address(base), bytes);
  if (munmap(base, bytes) != 0) fail("munmap of a range");
}

GranuleId HostBackend::create_granule(uint64_t bytes) {
  vmm_.check_size("create_granule", bytes);
  if (!has_room(bytes)) return 0;
  uint64_t offset = offsets_.take(bytes);
  if (offset == RangeAllocator::kNone) return 0;
  if (offsets_.top() > file_size_) {
    if (ftruncate(fd_, off_t(offsets_.top())) != 0) {
      offsets_.give_back(offset, bytes);
      if (errno == ENOSPC || errno == EFBIG) return 0;
      fail("ftruncate");
    }
    file_size_ = offsets_.top();
  }
  used_ += bytes;
  return vmm_.add_granule(bytes, offset);
}

void HostBackend::release_granule(GranuleId granule) {
  VmmTable::Granule g = vmm_.remove_granule(granule);
  // The pages go back to the system; the range reads as zeros if reused.
  if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(g.payload), off_t(g.size)) != 0)
    fail("fallocate(PUNCH_HOLE)");
  offsets_.give_back(g.payload, g.size);
  used_ -= g.size;
}

void HostBackend::map(void* addr, GranuleId granule) {
  const VmmTable::Granule& g = vmm_.map(address(addr), granule);
  // Inaccessible until set_access, as on a GPU.
  if (mmap(addr, g.size, PROT_NONE, MAP_SHARED | MAP_FIXED, fd_, off_t(g.payload)) == MAP_FAILED) {
    int err = errno;
    vmm_.unmap(address(addr), g.size, [](uint64_t, GranuleId) {});
    errno = err;
    fail("mmap(MAP_FIXED) of a granule");
  }
}

void HostBackend::set_access(void* addr, uint64_t bytes) {
  vmm_.set_access(address(addr), bytes);
  if (mprotect(addr, bytes, PROT_READ | PROT_WRITE) != 0) fail("mprotect");
}

void HostBackend::unmap(void* addr, uint64_t bytes) {
  vmm_.unmap(address(addr), bytes, [](uint64_t, GranuleId) {});
  // Back to reserved, inaccessible address space.
  if (mmap(addr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
    fail("mmap(MAP_FIXED) over an unmapped range");
}

uint64_t HostBackend::physical_offset(uint64_t addr) const {
  auto [start, m] = vmm_.mapping_covering(addr);
  if (m == nullptr) return kNotPhysical;
  return vmm_.granule(m->granule)->payload + (addr - start);
}

}  // namespace hbmalloc

// Where memory comes from. The only layer that touches a device.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "hbmalloc/config.hpp"
#include "hbmalloc/ipc.hpp"
#include "hbmalloc/types.hpp"

namespace hbmalloc {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  virtual int device() const = 0;
  // Bytes the device can hold in all (the capacity a memory fraction applies to).
  virtual uint64_t capacity() const = 0;

  // A device segment of `bytes`, or nullptr when the device is out of memory.
  // Other failures throw Error(kBackend).
  virtual void* malloc_segment(uint64_t bytes) = 0;
  virtual void free_segment(void* ptr, uint64_t bytes) = 0;

  // Marks the point the work queued on `stream` has reached.
  virtual EventId record_event(StreamId stream) = 0;
  // Whether the work before the event has completed; the event stays valid.
  virtual bool event_done(EventId event) = 0;
  virtual void release_event(EventId event) = 0;
  // Waits for all work on the device.
  virtual void synchronize() = 0;

  // Microseconds on the clock the policy keeps time budgets against: the
  // steady clock, or a replay's trace clock (SimBackend::set_trace_time);
  // nullopt when there is none (a trace without times).
  virtual std::optional<int64_t> now_us() const;

  // From now on device `peer` may read and write every block of this device,
  // those held now and those to come: page-mapped memory is reachable only by
  // the devices named when its access was set, so this is more than the
  // runtime's peer access. Backends whose memory every device reaches (sim,
  // host) have nothing to do. Throws Error(kBackend) when the devices cannot.
  virtual void grant_peer(int peer) { (void)peer; }

  // --- Virtual memory management (CUDA VMM: cuMemAddressReserve, cuMemCreate,
  // cuMemMap, cuMemSetAccess, cuMemUnmap, cuMemRelease) ---
  //
  // Physical memory comes in granules created on their own and mapped into
  // reserved virtual address ranges, so the same physical memory can move to
  // another address while nothing live is moved. Sizes and addresses are
  // multiples of vmm_granularity(). A granule is mapped at most once at a time,
  // at an address inside a reserved range; memory is usable only after
  // set_access. Capacity counts created granules (and plain segments), never
  // address space. Misuse (unaligned, not reserved, already mapped, unknown
  // handle) throws Error(kBackend) or Error(kInvalidArgument) and changes nothing.
  //
  // Backends without VMM keep these defaults: granularity 0 says so, and the
  // operations throw Error(kBackend); policies then use plain segments.

  // The smallest granule and alignment, in bytes (a power of two; 0: no VMM).
  virtual uint64_t vmm_granularity() const { return 0; }
  // `bytes` of address space with nothing behind it, or nullptr when none is left.
  virtual void* reserve_range(uint64_t bytes);
  // Gives back a whole range from reserve_range; nothing in it may be mapped.
  virtual void release_range(void* base, uint64_t bytes);
  // A physical granule of `bytes`, or 0 when the device is out of memory.
  virtual GranuleId create_granule(uint64_t bytes);
  // Frees an unmapped granule's physical memory.
  virtual void release_granule(GranuleId granule);
  // Maps the whole granule at addr, which must be reserved and unmapped.
  virtual void map(void* addr, GranuleId granule);
  // Lets the device read and write [addr, addr + bytes), which must be mapped.
  virtual void set_access(void* addr, uint64_t bytes);
  // Unmaps [addr, addr + bytes), which must consist of whole mapped granules;
  // the granules stay allocated. The caller makes sure no queued work still
  // uses the range (an event on its streams is done).
  virtual void unmap(void* addr, uint64_t bytes);

  // The same in runs, for backends where one call is cheaper than many (the
  // defaults loop over the single operations and throw Error(kBackend) when
  // the ids they get are not consecutive):
  // up to n granules of `bytes` each, as one run (fewer: device full).
  virtual GranuleRun create_granules(uint64_t bytes, size_t n);
  virtual void release_granules(GranuleRun run);
  // Granule run.first + i, each `bytes` long, mapped at addr + i * bytes. All
  // or nothing: a call that throws leaves nothing of it mapped.
  virtual void map_granules(void* addr, GranuleRun run, uint64_t bytes);

  // --- Sharing memory with another process (IPC) ---
  //
  // The physical memory behind [addr, addr + bytes) as descriptors another
  // process can open (hbmalloc/ipc.hpp): new descriptors the caller owns.
  // Throws Error(kBackend) naming why when the memory cannot be shared (a
  // backend without it, memory created unshareable).
  virtual IpcBlock share_range(void* addr, uint64_t bytes);
  // Maps another process's shared block on this device and returns where the
  // block starts; the descriptors stay the caller's. Throws Error(kBackend).
  virtual void* open_shared(const IpcBlock& block);
  // Unmaps a block open_shared returned (the pointer it gave). Throws
  // Error(kInvalidArgument) for any other pointer.
  virtual void close_shared(void* ptr);
};

// The backend named by config.backend for `device`. Throws Error(kConfig) for
// an unknown backend or one this build lacks, Error(kBackend) when the device
// cannot be used (no GPU, no driver, index out of range).
std::unique_ptr<Backend> make_backend(const Config& config, int device);

}  // namespace hbmalloc

// The C++ API: one Allocator per device.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "hbmalloc/ipc.hpp"
#include "hbmalloc/layout.hpp"
#include "hbmalloc/stats.hpp"
#include "hbmalloc/types.hpp"

namespace hbmalloc {

class AllocatorObserver;  // hbmalloc/observer.hpp

// What a private pool holds at one moment: CUDA graph trees (torch.compile's
// reduce-overhead mode) checkpoint a pool after each recording and restore it
// before recording a new branch, so the pool's allocator knows the tensors a
// replayed graph left live.
struct PoolCheckpoint {
  PoolId pool;
  Layout segments;  // address order; the allocated blocks are what was live
};
// What a restore changed.
struct PoolRestore {
  std::vector<void*> freed;            // live before the restore and freed by it (some live again below)
  std::vector<BlockLayout> allocated;  // the checkpoint's live blocks, live again at their addresses
};
class Backend;            // allocator/backend/backend.h
class Recorder;           // hbmalloc/recorder.hpp

class Allocator {
 public:
  // Builds the backend and policy named in config for `device`.
  Allocator(const Config& config, int device);
  // Uses the given backend (tests drive a SimBackend's streams this way).
  Allocator(const Config& config, std::unique_ptr<Backend> backend);
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // Returns device memory of at least `size` bytes usable on `stream`.
  // size 0 returns nullptr. Throws Error(kOutOfMemory) after releasing the
  // cache and retrying; the allocator stays usable.
  void* malloc(uint64_t size, StreamId stream = 0);
  // Frees ptr. expected_size >= 0 must equal the size passed to malloc.
  // Throws Error(kDoubleFree / kUnknownPointer / kSizeMismatch) and changes
  // nothing in that case. nullptr is ignored.
  void free(void* ptr, int64_t expected_size = -1);
  // The block at ptr is also used on `stream`.
  void record_stream(void* ptr, StreamId stream);
  // Releases all cached free segments to the backend.
  void empty_cache();
  // reserved <= fraction * capacity from now on.
  void set_memory_fraction(double fraction);
  // Device `peer` may read and write every block of this allocator, now and
  // from now on (page-mapped memory is reachable only by devices granted it).
  // Throws Error(kBackend) when the devices cannot reach each other.
  void enable_peer_access(int peer);

  // Sharing with another process (hbmalloc/ipc.hpp). The physical memory
  // behind the live block at ptr, as new descriptors the caller owns. The
  // block's memory goes back to this allocator when it is freed here, whoever
  // else maps it (keeping it alive meanwhile is the caller's protocol, as
  // torch.multiprocessing's reference counts are). Throws
  // Error(kUnknownPointer) for a pointer that is no live block of this
  // allocator, Error(kBackend) when its memory cannot be shared (backends
  // other than cuda, plain segments, ipc:off).
  IpcBlock share(void* ptr) const;
  // Maps a block another process shared on this device and returns where it
  // starts; the descriptors stay the caller's. It is no block of this
  // allocator: close it with close_shared, never free. Throws Error(kBackend).
  void* open_shared(const IpcBlock& block);
  void close_shared(void* ptr);

  // Private pools (CUDA graphs, torch.cuda.MemPool): memory a pool holds is
  // reused only by allocations routed to that pool, and stays reserved while
  // the pool is in use, so a captured graph's addresses stay valid.
  // Creates the pool with one use, or adds a use to it.
  void create_pool(PoolId pool);
  // Adds a use and, until end_allocate_to_pool, routes every allocation on a
  // stream for which `route` is true to `pool` (the latest begun pool first).
  // Throws Error(kInvalidArgument) when `pool` is already being routed to.
  void begin_allocate_to_pool(PoolId pool, std::function<bool(StreamId)> route);
  void end_allocate_to_pool(PoolId pool);
  // Drops one use. At none, the pool's free memory is released as it becomes
  // free and the pool goes once nothing in it is live.
  void release_pool(PoolId pool);
  // Uses of `pool` (0 for a pool that does not exist).
  int pool_use_count(PoolId pool) const;
  // The state of every block of `pool`. Throws Error(kInvalidArgument) when
  // there is no such pool.
  PoolCheckpoint checkpoint_pool(PoolId pool) const;
  // Returns the pool to `checkpoint`: every block live in it now is freed,
  // and every block live in the checkpoint is live again, at its address.
  // Waits for pending stream work first. Throws Error(kInvalidArgument),
  // changing nothing, when the pool is gone, a graph is being captured, or a
  // checkpointed block lies outside the pool's memory now.
  PoolRestore restore_pool(const PoolCheckpoint& checkpoint);

  // Whether ptr is a block this allocator handed out and has not got back
  // (a block whose free waits on stream uses counts). Never throws.
  bool owns(const void* ptr) const noexcept;

  // Current statistics, hbmalloc's own figures filled in.
  Stats stats() const;
  // Current requested / allocated / reserved bytes (no structure walk).
  Usage usage() const;
  void reset_peak_stats();
  // Throws Error(kInvariant) describing the first violation found.
  void check_invariants() const;
  // Every segment held and the blocks tiling it, in address order. Blocks
  // waiting on stream events count as allocated.
  Layout layout() const;

  // Records this allocator's operations into `recorder` from now on (what it
  // holds now is the trace's starting picture); nullptr detaches. Throws
  // Error when the recorder already records this device.
  void attach_recorder(std::shared_ptr<Recorder> recorder);
  // Tells `observer` what this allocator does from now on, after telling it
  // what the allocator holds now (hbmalloc/observer.hpp); adding one already
  // there does nothing. Throws what the observer throws on attaching, and
  // Error(kInvalidArgument) for nullptr.
  void add_observer(std::shared_ptr<AllocatorObserver> observer);
  // Detaches `observer` (no-op when it is not attached).
  void remove_observer(const AllocatorObserver* observer);

  int device() const;
  const Config& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend struct ReplayHooks;  // what only a replay asks (allocator/replay_hooks.h)
};

}  // namespace hbmalloc

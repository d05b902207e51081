// A whole allocation policy: owns the free-block index and the rules that
// decide where a request lands. Called by the Allocator under its lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "hbmalloc/error.hpp"
#include "hbmalloc/layout.hpp"
#include "hbmalloc/types.hpp"
#include "core/live_stats.h"
#include "hbmalloc/layout.hpp"
#include "hbmalloc/stats.hpp"

namespace hbmalloc {

struct Allocation {
  void* ptr = nullptr;  // nullptr: the device had to grow and could not
  uint64_t allocated = 0;
  Pool pool = Pool::kLarge;
};

// What the allocator needs to know of a live block.
struct LiveBlock {
  uint64_t requested = 0;
  uint64_t allocated = 0;
  Pool pool = Pool::kLarge;
  StreamId stream = 0;
};

enum class FreeStatus { kOk, kNotLive, kSizeMismatch };

// What the policy's structures hold, per pool, so the invariant checker can
// compare it with the statistics the allocator kept.
struct PoolTally {
  int64_t segments = 0, reserved = 0;
  int64_t blocks = 0, allocated_bytes = 0, requested_bytes = 0;
  int64_t inactive_split = 0, inactive_split_bytes = 0;
  int64_t in_use = 0;  // used slots / allocated blocks, as the layout says
};
struct Tally {
  PoolTally pools[2];  // indexed by Pool
  PoolTally& of(Pool p) { return pools[static_cast<int>(p)]; }
};

class Policy {
 public:
  virtual ~Policy() = default;

  virtual Allocation allocate(uint64_t size, StreamId stream) = 0;
  // The last try, after the allocator released every cached segment; a
  // policy whose own retry differs from a first try (cca) says so here.
  virtual Allocation allocate_after_release(uint64_t size, StreamId stream) { return allocate(size, stream); }
  // Frees ptr when live and, if expected_requested >= 0, of that requested
  // size; `out` describes the block. Changes nothing unless it returns kOk.
  virtual FreeStatus free(void* ptr, int64_t expected_requested, LiveBlock& out) = 0;
  // Looks ptr up without changing anything.
  virtual bool find(void* ptr, LiveBlock& out) const = 0;
  // Why a pointer that is not live was passed to free: kDoubleFree when it
  // lies in free memory hbmalloc holds, kUnknownPointer otherwise.
  virtual ErrorCode classify_bad_pointer(void* ptr) const = 0;

  // Returns every wholly free segment to the backend; bytes released.
  virtual uint64_t release_cached() = 0;
  // reserved may not grow past `bytes`.
  virtual void set_limit(uint64_t bytes) = 0;
  virtual uint64_t largest_free_block() const = 0;
  // Walks every structure; throws Error(kInvariant) on the first violation.
  virtual Tally check() const = 0;
  // Every segment held, in address order, with blocks tiling it.
  virtual Layout layout() const = 0;

  // Takes over a recorded picture on a policy that holds nothing yet: each
  // segment of `start` anew, its listed blocks live at the same offsets
  // (size 0: as this policy rounds the request), the rest free. Returns the
  // live blocks in the order given. Throws Error(kInvalidArgument) when the
  // picture is inconsistent or the policy cannot start from one.
  virtual std::vector<Allocation> adopt(const Layout& start);
  // A block exactly at [addr, addr + size) for `requested` bytes, carved out
  // of cached free memory this policy holds: a private pool's checkpoint
  // restored (a CUDA graph addresses the block there). Throws
  // Error(kInvalidArgument) naming the address when that range is not wholly
  // free memory here (nothing changed then).
  virtual Allocation allocate_at(uint64_t addr, uint64_t size, uint64_t requested);
  // While a CUDA graph is captured nothing may query events, synchronize or
  // unmap device memory: a policy that would (to remap) holds back meanwhile.
  virtual void set_capturing(bool) {}
};

// The policy named by config.policy, drawing memory from `backend` and
// keeping segment-level statistics in `stats`.
std::unique_ptr<Policy> make_policy(const Config& config, Backend& backend, LiveStats& stats);

}  // namespace hbmalloc

// The private pools of one Allocator (CUDA graphs, torch.cuda.MemPool). Each
// pool is a policy of its own over the allocator's backend and statistics, so
// what it caches is reused only by allocations routed to it, while the memory
// limit and every statistic stay the device's. Used under the Allocator's lock.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy.h"

namespace hbmalloc {

// "pool (7, 1)", as errors name a pool.
std::string pool_name(PoolId id);

struct PrivatePool {
  std::unique_ptr<Policy> policy;
  PoolId id;
  int uses = 0;
  int64_t live = 0;  // blocks handed out and not yet back in the policy
};

class PrivatePools {
 public:
  PrivatePools(const Config& config, Backend& backend, LiveStats& stats)
      : config_(config), backend_(backend), stats_(stats) {}

  void add_use(PoolId id);
  // Adds a use and routes allocations on streams `route` accepts to the pool.
  void begin_routing(PoolId id, std::function<bool(StreamId)> route);
  void end_routing(PoolId id);
  // Drops a use; an unused pool gives back its free memory and goes when empty.
  void release(PoolId id);
  int use_count(PoolId id) const;

  // The pool named id; throws Error(kInvalidArgument) naming `what` and the pool when there is none.
  PrivatePool& get(PoolId id, const char* what);

  // One branch on the hot path: no pool is being routed to.
  bool routing() const { return !routes_.empty(); }
  bool empty() const { return pools_.empty(); }
  // The pool an allocation on `stream` goes to (latest route first), or nullptr.
  PrivatePool* route(StreamId stream);
  // The pool whose policy holds `ptr` live (filling `out`), or nullptr.
  PrivatePool* owner(void* ptr, LiveBlock& out);
  // Policy::free in the pool whose policy holds `ptr` live, which is set in
  // `pool`; kNotLive when none does.
  FreeStatus free(void* ptr, int64_t expected_requested, LiveBlock& out, PrivatePool*& pool);

  void handed_out(PrivatePool& pool) { ++pool.live; }
  // A block went back to the pool's policy.
  void returned(PrivatePool& pool);
  // The largest cached free block over every pool (0: none).
  uint64_t largest_free_block() const;
  // kDoubleFree when a pool's policy holds ptr as freed memory, else kUnknownPointer.
  ErrorCode classify_bad_pointer(void* ptr) const;
  // Gives back the cached memory of pools no one uses any more.
  void release_unused();
  void set_limit(uint64_t bytes);
  // Adds every pool's structures to `tally` and its segments to `layout`.
  void add_to(Tally& tally) const;
  void add_to(Layout& layout) const;

 private:
  void drop_if_done(std::map<PoolId, PrivatePool>::iterator it);

  const Config& config_;
  Backend& backend_;
  LiveStats& stats_;
  uint64_t limit_ = UINT64_MAX;
  // std::map: PendingFree entries hold PrivatePool pointers across inserts.
  std::map<PoolId, PrivatePool> pools_;
  std::vector<std::pair<PoolId, std::function<bool(StreamId)>>> routes_;
};

}  // namespace hbmalloc

// Checkpointing and restoring a private pool (CUDA graph trees): the pool's
// layout as it is, and back to it later. A restore frees every block live in
// the pool, then carves each checkpointed live block out of the freed memory
// at its own address (Policy::allocate_at), with the statistics and the
// observers told as for any free and allocation.
#include <algorithm>
#include <mutex>
#include <string>

#include "allocator_impl.h"
#include "core/helpers.h"

namespace hbmalloc {

namespace {

// Whether every live block of `checkpoint` lies inside a segment of `now`
// (both in address order): freeing the pool's blocks leaves those free.
std::string first_outside(const Layout& checkpoint, const Layout& now) {
  for (const SegmentLayout& seg : checkpoint)
    for (const BlockLayout& b : seg.blocks) {
      if (!b.allocated) continue;
      auto it = std::upper_bound(now.begin(), now.end(), b.addr,
                                 [](uint64_t addr, const SegmentLayout& s) { return addr < s.addr; });
      if (it == now.begin() || b.addr + b.size > std::prev(it)->addr + std::prev(it)->size)
        return "the checkpoint's block at " + hex(b.addr) + " (" + std::to_string(b.size) +
               " bytes) lies outside the pool's memory now";
    }
  return {};
}

}  // namespace

PoolCheckpoint Allocator::checkpoint_pool(PoolId id) const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  PrivatePool& pool = impl_->pools.get(id, "checkpoint_pool");
  PoolCheckpoint c{id, pool.policy->layout()};
  for (SegmentLayout& seg : c.segments) seg.private_pool = id;
  return c;
}

PoolRestore Allocator::restore_pool(const PoolCheckpoint& checkpoint) {
  Impl& impl = *impl_;
  std::lock_guard<SpinLock> lock(impl.mu);
  PrivatePool& pool = impl.pools.get(checkpoint.pool, "restore_pool");
  if (impl.pools.routing())
    throw Error(ErrorCode::kInvalidArgument, "restore_pool: a graph is being captured (its streams may not wait)");
  Policy& policy = *pool.policy;
  if (std::string outside = first_outside(checkpoint.segments, policy.layout()); !outside.empty())
    throw Error(ErrorCode::kInvalidArgument, "restore_pool: " + pool_name(checkpoint.pool) + ": " + outside);
  impl.sync_and_drain();  // a block whose free waits on stream work is freed for good first

  PoolRestore r;
  const Layout now = policy.layout();
  for (const SegmentLayout& seg : now)
    for (const BlockLayout& b : seg.blocks) {
      if (!b.allocated) continue;
      void* ptr = reinterpret_cast<void*>(b.addr);
      impl.stream_uses.erase(ptr);  // its stream uses ended with the sync
      LiveBlock live;
      if (policy.free(ptr, -1, live) != FreeStatus::kOk)
        violated("restore_pool: the pool's live block at " + hex(b.addr) + " would not free");
      impl.count_release(live);
      impl.count_inactive(live);
      impl.pools.returned(pool);
      if (!impl.observers.empty()) impl.tell([&](AllocatorObserver& o) { o.freed(impl.device, b.addr); });
      r.freed.push_back(ptr);
    }
  for (const SegmentLayout& seg : checkpoint.segments)
    for (const BlockLayout& b : seg.blocks) {
      if (!b.allocated) continue;
      const Allocation a = policy.allocate_at(b.addr, b.size, b.requested);
      impl.count_alloc(a, b.requested);
      impl.pools.handed_out(pool);
      if (!impl.observers.empty())
        impl.tell([&](AllocatorObserver& o) { o.allocated(impl.device, b.addr, b.requested, a.allocated, a.pool, seg.stream); });
      r.allocated.push_back(b);
    }
  impl.debug_check();
  return r;
}

}  // namespace hbmalloc

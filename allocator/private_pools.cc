#include "private_pools.h"

#include <algorithm>
#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {

void add(PoolTally& to, const PoolTally& from) {
  to.segments += from.segments;
  to.reserved += from.reserved;
  to.blocks += from.blocks;
  to.allocated_bytes += from.allocated_bytes;
  to.requested_bytes += from.requested_bytes;
  to.inactive_split += from.inactive_split;
  to.inactive_split_bytes += from.inactive_split_bytes;
  to.in_use += from.in_use;
}

}  // namespace

std::string pool_name(PoolId id) {
  return "pool (" + std::to_string(id.first) + ", " + std::to_string(id.second) + ")";
}

void PrivatePools::add_use(PoolId id) {
  if (id == PoolId{}) throw Error(ErrorCode::kInvalidArgument, "pool (0, 0) is the default pool, not a private one");
  auto [it, created] = pools_.try_emplace(id);
  PrivatePool& pool = it->second;
  if (created) {
    pool.id = id;
    pool.policy = make_policy(config_, backend_, stats_);
    pool.policy->set_limit(limit_);
    pool.policy->set_capturing(routing());
  }
  ++pool.uses;  // a released pool that still holds live blocks is taken up again
}

void PrivatePools::begin_routing(PoolId id, std::function<bool(StreamId)> route) {
  for (const auto& r : routes_)
    if (r.first == id) throw Error(ErrorCode::kInvalidArgument, "already allocating to " + pool_name(id));
  if (!route) throw Error(ErrorCode::kInvalidArgument, "allocating to " + pool_name(id) + " needs a stream filter");
  add_use(id);
  routes_.emplace_back(id, std::move(route));
  for (auto& [pool_id, pool] : pools_) pool.policy->set_capturing(true);
}

void PrivatePools::end_routing(PoolId id) {
  for (auto it = routes_.begin(); it != routes_.end(); ++it) {
    if (it->first == id) {
      routes_.erase(it);
      for (auto& [pool_id, pool] : pools_) pool.policy->set_capturing(routing());
      return;
    }
  }
  throw Error(ErrorCode::kInvalidArgument, "not allocating to " + pool_name(id));
}

PrivatePool& PrivatePools::get(PoolId id, const char* what) {
  auto it = pools_.find(id);
  if (it == pools_.end()) throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": no " + pool_name(id));
  return it->second;
}

void PrivatePools::release(PoolId id) {
  PrivatePool& pool = get(id, "release_pool");
  if (pool.uses == 0) throw Error(ErrorCode::kInvalidArgument, "release_pool: " + pool_name(id) + " has no use left");
  if (--pool.uses == 0) {
    pool.policy->release_cached();
    drop_if_done(pools_.find(id));
  }
}

int PrivatePools::use_count(PoolId id) const {
  auto it = pools_.find(id);
  return it == pools_.end() ? 0 : it->second.uses;
}

PrivatePool* PrivatePools::route(StreamId stream) {
  for (auto it = routes_.rbegin(); it != routes_.rend(); ++it)
    if (it->second(stream)) return &get(it->first, "allocate");
  return nullptr;
}

PrivatePool* PrivatePools::owner(void* ptr, LiveBlock& out) {
  for (auto& [id, pool] : pools_)
    if (pool.policy->find(ptr, out)) return &pool;
  return nullptr;
}

FreeStatus PrivatePools::free(void* ptr, int64_t expected_requested, LiveBlock& out, PrivatePool*& pool) {
  for (auto& [id, p] : pools_) {
    const FreeStatus status = p.policy->free(ptr, expected_requested, out);
    if (status != FreeStatus::kNotLive) {
      pool = &p;
      return status;
    }
  }
  return FreeStatus::kNotLive;
}

void PrivatePools::returned(PrivatePool& pool) {
  --pool.live;
  if (pool.uses == 0) {
    pool.policy->release_cached();
    drop_if_done(pools_.find(pool.id));
  }
}

void PrivatePools::drop_if_done(std::map<PoolId, PrivatePool>::iterator it) {
  if (it != pools_.end() && it->second.uses == 0 && it->second.live == 0) pools_.erase(it);
}

uint64_t PrivatePools::largest_free_block() const {
  uint64_t largest = 0;
  for (const auto& [id, pool] : pools_) largest = std::max(largest, pool.policy->largest_free_block());
  return largest;
}

ErrorCode PrivatePools::classify_bad_pointer(void* ptr) const {
  for (const auto& [id, pool] : pools_)
    if (pool.policy->classify_bad_pointer(ptr) == ErrorCode::kDoubleFree) return ErrorCode::kDoubleFree;
  return ErrorCode::kUnknownPointer;
}

void PrivatePools::release_unused() {
  for (auto& [id, pool] : pools_)
    if (pool.uses == 0) pool.policy->release_cached();
}

void PrivatePools::set_limit(uint64_t bytes) {
  limit_ = bytes;
  for (auto& [id, pool] : pools_) pool.policy->set_limit(bytes);
}

void PrivatePools::add_to(Tally& tally) const {
  for (const auto& [id, pool] : pools_) {
    Tally t = pool.policy->check();
    for (int p = 0; p < 2; ++p) add(tally.pools[p], t.pools[p]);
  }
}

void PrivatePools::add_to(Layout& layout) const {
  for (const auto& [id, pool] : pools_) {
    for (SegmentLayout& seg : pool.policy->layout()) {
      seg.private_pool = id;
      layout.push_back(std::move(seg));
    }
  }
}

}  // namespace hbmalloc

// The allocator's invariant check: the policy walks its structures into a
// Tally, and the statistics the Allocator kept must agree with it, with
// themselves, and with what the device calls hold.
#include <string>
#include <utility>

#include "allocator_impl.h"

namespace hbmalloc {

void Allocator::Impl::check() const {
  Tally t = policy->check();
  pools.add_to(t);
  const Stats stats = this->stats.snapshot();
  auto fail = [](const std::string& what) { throw Error(ErrorCode::kInvariant, what); };
  for (Pool pool : {Pool::kSmall, Pool::kLarge}) {
    const PoolTally& pt = t.of(pool);
    int64_t pending_n = 0, pending_bytes = 0;
    for (const auto& [ptr, p] : pending)
      if (p.block.pool == pool) ++pending_n, pending_bytes += int64_t(p.block.allocated);
    const char* name = pool == Pool::kSmall ? "small_pool" : "large_pool";
    auto expect = [&](const char* stat, int64_t kept, int64_t held) {
      if (kept != held)
        fail(std::string(stat) + "." + name + ".current is " + std::to_string(kept) + " but the structures hold " +
             std::to_string(held));
    };
    expect("segment", stats.segment.of(pool).current, pt.segments);
    expect("reserved_bytes", stats.reserved_bytes.of(pool).current, pt.reserved);
    expect("active", stats.active.of(pool).current, pt.blocks);
    expect("active_bytes", stats.active_bytes.of(pool).current, pt.allocated_bytes);
    expect("requested_bytes", stats.requested_bytes.of(pool).current, pt.requested_bytes);
    expect("allocation", stats.allocation.of(pool).current, pt.blocks - pending_n);
    expect("allocated_bytes", stats.allocated_bytes.of(pool).current, pt.allocated_bytes - pending_bytes);
    expect("inactive_split", stats.inactive_split.of(pool).current, pt.inactive_split);
    expect("inactive_split_bytes", stats.inactive_split_bytes.of(pool).current, pt.inactive_split_bytes);
  }
  const std::pair<const char*, const StatArray*> arrays[] = {
      {"allocation", &stats.allocation},         {"segment", &stats.segment},
      {"active", &stats.active},                 {"inactive_split", &stats.inactive_split},
      {"allocated_bytes", &stats.allocated_bytes}, {"reserved_bytes", &stats.reserved_bytes},
      {"active_bytes", &stats.active_bytes},     {"inactive_split_bytes", &stats.inactive_split_bytes},
      {"requested_bytes", &stats.requested_bytes}};
  for (auto [name, a] : arrays) {
    for (const StatCounter* c : {&a->all, &a->small_pool, &a->large_pool}) {
      if (c->peak < c->current || c->current < 0 || c->current != c->allocated - c->freed)
        fail(std::string(name) + ": counter inconsistent (current " + std::to_string(c->current) + ", peak " +
             std::to_string(c->peak) + ")");
    }
    if (a->all.current != a->small_pool.current + a->large_pool.current)
      fail(std::string(name) + ".all.current is not small_pool + large_pool");
  }
  // Everything reserved came from the device as a plain segment or a granule.
  const int64_t granules_held = stats.vmm.create - stats.vmm.release;
  const int64_t from_device = stats.device_alloc_bytes - stats.device_free_bytes +
                              granules_held * int64_t(backend->vmm_granularity());
  if (from_device != stats.reserved_bytes.all.current)
    fail("reserved_bytes.all.current is " + std::to_string(stats.reserved_bytes.all.current) +
         " but the device calls hold " + std::to_string(from_device));
}

}  // namespace hbmalloc

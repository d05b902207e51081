// hbmalloc's own policy, v1: size-class slabs for small requests, best fit
// with splitting and coalescing for large ones, one map of live pointers.
#pragma once

#include <cstdint>

#include "core/pointer_map.h"
#include "policy/hbm/large_pool.h"
#include "policy/hbm/slab_pool.h"
#include "policy/policy.h"
#include "policy/segment_source.h"

namespace hbmalloc {

class HbmPolicy final : public Policy {
 public:
  HbmPolicy(const Config& config, Backend& backend, LiveStats& stats);

  Allocation allocate(uint64_t size, StreamId stream) override;
  FreeStatus free(void* ptr, int64_t expected_requested, LiveBlock& out) override;
  bool find(void* ptr, LiveBlock& out) const override;
  ErrorCode classify_bad_pointer(void* ptr) const override;
  uint64_t release_cached() override;
  void set_limit(uint64_t bytes) override { source_.set_limit(bytes); }
  uint64_t largest_free_block() const override;
  Tally check() const override;
  Layout layout() const override;
  void set_segment_log(std::vector<SegmentEvent>* log) override { source_.set_log(log); }

 private:
  // A live pointer: its slab slot or its large block, and what was asked.
  struct Live {
    uint64_t requested;
    void* owner;  // Slab* or Block*, by pool
    uint32_t slot;
    Pool pool;
  };
  static LiveBlock describe(const Live& live);

  SegmentSource source_;
  SlabPool slabs_;
  LargePool large_;
  PointerMap<Live> live_;
};

}  // namespace hbmalloc

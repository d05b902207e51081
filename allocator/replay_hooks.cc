#include "replay_hooks.h"

#include <mutex>

#include "allocator_impl.h"

namespace hbmalloc {

std::vector<void*> ReplayHooks::adopt(Allocator& a, const Layout& start) {
  Allocator::Impl& impl = *a.impl_;
  std::lock_guard<SpinLock> lock(impl.mu);
  if (impl.stats.segment.current_all() != 0 || impl.stats.reserved_bytes.current_all() != 0)
    throw Error(ErrorCode::kInvalidArgument, "adopt: the allocator holds memory already");
  struct Unobserved {  // the observers, set aside while the picture is taken
    ObservedBackend::Observers& list;
    ObservedBackend::Observers saved = std::move(list);
    ~Unobserved() { list = std::move(saved); }
  } unobserved{impl.observers};
  std::vector<Allocation> live = impl.policy->adopt(start);
  std::vector<void*> ptrs;
  ptrs.reserve(live.size());
  size_t i = 0;
  for (const SegmentLayout& seg : start)
    for (const BlockLayout& b : seg.blocks) {
      impl.count_alloc(live[i], b.requested);
      ptrs.push_back(live[i++].ptr);
    }
  return ptrs;
}

}  // namespace hbmalloc

#include "policy/hbm/slab_pool.h"

#include <string>
#include <utility>

#include "core/helpers.h"
#include "hbmalloc/error.hpp"

namespace hbmalloc::hbm {

namespace {

void push_front(Slab*& head, Slab* s) {
  s->prev = nullptr;
  s->next = head;
  if (head) head->prev = s;
  head = s;
}

void unlink(Slab*& head, Slab* s) {
  if (s->prev) s->prev->next = s->next;
  else head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = nullptr;
}


}  // namespace

SlabPool::SlabPool(uint64_t max_size, uint64_t slab_size, SegmentSource& source, GranuleSupply* supply,
                   SlabHost* host)
    : classes_(max_size),
      slab_size_(slab_size),
      source_(source),
      supply_(supply && supply->granule() == slab_size ? supply : nullptr),
      arenas_(supply && supply->granule() != slab_size ? supply : nullptr),
      host_(arenas_ != nullptr ? host : nullptr) {}

SlabPool::~SlabPool() {
  if (supply_) {
    release_all_vmm();
    return;
  }
  // Hosted slabs went back with give_back_hosted, before their host.
  for (const auto& [base, slab] : by_base_)
    if (!slab->hosted) source_.release_at_exit(reinterpret_cast<void*>(base), slab_size_);
}

void SlabPool::prepare(StreamSlabs& st) const {
  st.partial.assign(size_t(classes_.count()), nullptr);
  st.spare.assign(size_t(classes_.count()), nullptr);
}

void SlabPool::format(Slab* slab, int cls) {
  slab->cls = cls;
  slab->slot_size = SizeClasses::size_of(cls);
  slab->slots = uint32_t(slab_size_ / slab->slot_size);
  slab->used = 0;
  slab->free.reset(slab->slots);
}

Slab* SlabPool::new_slab(StreamId stream, int cls, StreamSlabs& st) {
  if (Slab* spare = st.spare[size_t(cls)]) {
    st.spare[size_t(cls)] = nullptr;
    return spare;
  }
  if (Slab* empty = st.empty) {
    unlink(st.empty, empty);
    format(empty, cls);
    return empty;
  }
  GranuleId granule = 0;
  bool hosted = false;
  uintptr_t base = new_memory(stream, granule, hosted);
  if (base == 0) return nullptr;
  Slab* slab = pool_.make();
  slab->base = base;
  slab->stream = stream;
  slab->granule = granule;
  slab->hosted = hosted;
  format(slab, cls);
  by_base_[slab->base] = slab;
  account_empty_hosted(slab, +1);
  return slab;
}

uintptr_t SlabPool::take_address() {
  if (!free_addresses_.empty()) {
    uintptr_t a = free_addresses_.back();
    free_addresses_.pop_back();
    return a;
  }
  if (next_address_ == end_address_) {
    // Address space is cheap: room for many slabs at a time.
    const uint64_t bytes = slab_size_ * 4096;
    void* base = supply_->source().reserve_range(bytes);
    if (base == nullptr) return 0;
    ranges_.emplace_back(reinterpret_cast<uintptr_t>(base), bytes);
    next_address_ = reinterpret_cast<uintptr_t>(base);
    end_address_ = next_address_ + bytes;
  }
  uintptr_t a = next_address_;
  next_address_ += slab_size_;
  return a;
}

uintptr_t SlabPool::new_memory(StreamId stream, GranuleId& granule, bool& hosted) {
  if (supply_ == nullptr) {
    // The host's pages first: a slab there shares them with mid-size blocks
    // instead of holding a segment of its own beside them.
    if (host_ != nullptr)
      if (uintptr_t base = host_->take_slab(slab_size_, stream)) {
        hosted = true;
        return base;
      }
    void* mem = source_.grow(slab_size_, Pool::kSmall);
    if (mem == nullptr && arenas_ != nullptr && arenas_->make_room(slab_size_))
      mem = source_.grow(slab_size_, Pool::kSmall);
    return reinterpret_cast<uintptr_t>(mem);
  }
  std::vector<GranuleRun> got;
  if (!supply_->obtain(1, Pool::kSmall, got, slab_size_)) return 0;  // a slab adds at most its size
  uintptr_t base = take_address();
  if (base == 0) {
    supply_->source().release_runs(got, slab_size_, Pool::kSmall);
    return 0;
  }
  GranuleSource& source = supply_->source();
  try {
    source.map_with_access(reinterpret_cast<void*>(base), got, slab_size_);
  } catch (...) {
    source.release_runs(got, slab_size_, Pool::kSmall);
    free_addresses_.push_back(base);
    throw;
  }
  source_.stats().segment.increase(Pool::kSmall, 1);
  granule = got[0].first;
  return base;
}

void SlabPool::drop(Slab* slab, std::vector<GranuleRun>* out) {
  by_base_.erase(slab->base);
  if (slab->hosted) {
    if (slab->used == 0) account_empty_hosted(slab, -1);  // at teardown it may still hold slots
    host_->give_slab(slab->base);
  } else if (supply_ == nullptr) {
    source_.release(reinterpret_cast<void*>(slab->base), slab_size_, Pool::kSmall);
  } else {
    GranuleSource& source = supply_->source();
    source.unmap(reinterpret_cast<void*>(slab->base), slab_size_);
    source_.stats().segment.decrease(Pool::kSmall, 1);
    if (out != nullptr) {
      source.transfer(slab_size_, Pool::kSmall, Pool::kLarge);
      out->push_back({slab->granule, 1});
    } else {
      source.release(slab->granule, slab_size_, Pool::kSmall);
    }
    free_addresses_.push_back(slab->base);
  }
  pool_.recycle(slab);
}

size_t SlabPool::take_empty(size_t want, absl::FunctionRef<bool(const Slab*)> which,
                            absl::FunctionRef<void(StreamId, Slab*)> give) {
  size_t taken = 0;
  for (int pass = 0; pass < 2 && taken < want; ++pass)
    for (auto& [stream, owned] : streams_) {
      StreamSlabs& st = *owned;
      if (pass == 0) {
        for (Slab* s = st.empty; taken < want && s != nullptr;) {
          Slab* next = s->next;  // give may recycle s
          if (which(s)) {
            unlink(st.empty, s);
            give(stream, s);
            ++taken;
          }
          s = next;
        }
      } else {
        for (Slab*& spare : st.spare) {
          if (taken >= want) break;
          if (spare == nullptr || !which(spare)) continue;
          give(stream, std::exchange(spare, nullptr));
          ++taken;
        }
      }
      if (taken >= want) break;
    }
  return taken;
}

size_t SlabPool::reclaim(size_t want, std::vector<GranuleRun>& out, StreamIdle& idle) {
  if (host_ != nullptr) {
    // Empty hosted slabs hold no granule of their own. Where the limit leaves
    // no room for what is wanted, their blocks go back to the host, whose
    // reclaim comes next, rather than the out-of-memory retry flushing the
    // cache; else each stays its class's spare.
    if (arenas_->source().room(arenas_->granule()) < want)
      take_empty(
          SIZE_MAX, [](const Slab* s) { return s->hosted; }, [&](StreamId, Slab* s) { drop(s, nullptr); });
    return 0;
  }
  if (supply_ == nullptr) return 0;
  return take_empty(want, [](const Slab*) { return true; }, [&](StreamId stream, Slab* s) {
    idle.ensure(stream);
    drop(s, &out);
  });
}

uint64_t SlabPool::release_plain(uint64_t bytes, StreamIdle& idle) {
  if (arenas_ == nullptr) return 0;
  // Hosted slabs hold no segment: their pages go back with the host's.
  return slab_size_ * take_empty(
                          size_t((bytes + slab_size_ - 1) / slab_size_), [](const Slab* s) { return !s->hosted; },
                          [&](StreamId stream, Slab* s) {
                            idle.ensure(stream);
                            drop(s, nullptr);
                          });
}

void SlabPool::give_back_empty_hosted(uintptr_t addr, uint64_t size) {
  std::vector<Slab*> empty;
  auto it = by_base_.upper_bound(addr);
  if (it != by_base_.begin()) --it;
  for (; it != by_base_.end() && it->first < addr + size; ++it) {
    Slab* slab = it->second;
    if (slab->hosted && slab->used == 0 && slab->base + slab_size_ > addr) empty.push_back(slab);
  }
  for (Slab* slab : empty) {
    // An empty hosted slab is its class's spare (free() gives the others back).
    Slab*& spare = slabs_of(slab->stream).spare[size_t(slab->cls)];
    if (spare != slab) continue;
    spare = nullptr;
    drop(slab, nullptr);
  }
}

void SlabPool::give_back_hosted() noexcept {
  try {
    std::vector<Slab*> hosted;
    for (const auto& [base, slab] : by_base_)
      if (slab->hosted) hosted.push_back(slab);
    for (Slab* slab : hosted) drop(slab, nullptr);  // its lists die with the pool
  } catch (...) {
  }
}

void SlabPool::release_all_vmm() noexcept {
  // The policy is going away: all memory goes back to the device. A failure
  // has no one left to tell.
  try {
    GranuleSource& source = supply_->source();
    for (const auto& [base, slab] : by_base_) {
      source.unmap(reinterpret_cast<void*>(base), slab_size_);
      source.release(slab->granule, slab_size_, Pool::kSmall);
    }
    for (auto [base, bytes] : ranges_) source.release_range(reinterpret_cast<void*>(base), bytes);
  } catch (...) {
  }
}

SlabPool::Slot SlabPool::allocate(int cls, StreamId stream) {
  StreamSlabs& st = slabs_of(stream);
  Slab*& head = st.partial[size_t(cls)];
  Slab* slab = head;
  if (slab == nullptr) {
    slab = new_slab(stream, cls, st);
    if (slab == nullptr) return {};
    push_front(head, slab);
  }
  uint32_t index = slab->free.take_first();
  // The first used slot makes the others inactive; later ones take one each.
  ++slab->used;
  account_use(slab, +1);
  if (!slab->free.any()) unlink(head, slab);  // full slabs sit in no list
  return {slab, index};
}

SlabPool::Slot SlabPool::take_at(uintptr_t addr, uint64_t size) {
  Slab* slab = const_cast<Slab*>(slab_at(addr));
  if (slab == nullptr || size == 0 || size > classes_.max_size()) return {};
  const int cls = class_of(size);
  if (SizeClasses::size_of(cls) != size) return {};  // no class has slots of this size
  StreamSlabs& st = slabs_of(slab->stream);
  if (slab->used == 0) {  // the spare of its class, or in the empty list: it joins the class wanted
    if (st.spare[size_t(slab->cls)] == slab) st.spare[size_t(slab->cls)] = nullptr;
    else unlink(st.empty, slab);
    if (slab->cls != cls) format(slab, cls);
    push_front(st.partial[size_t(cls)], slab);
  }
  const uint64_t offset = addr - slab->base;
  const uint64_t index = offset / slab->slot_size;
  if (slab->cls != cls || offset % slab->slot_size != 0 || index >= slab->slots || !slab->free.is_free(uint32_t(index)))
    return {};
  slab->free.take(uint32_t(index));
  ++slab->used;
  account_use(slab, +1);
  if (!slab->free.any()) unlink(st.partial[size_t(cls)], slab);
  return {slab, uint32_t(index)};
}

void SlabPool::free(Slab* slab, uint32_t index) {
  StreamSlabs& st = slabs_of(slab->stream);
  Slab*& head = st.partial[size_t(slab->cls)];
  if (!slab->free.any()) push_front(head, slab);
  slab->free.put(index);
  --slab->used;
  account_use(slab, -1);
  if (slab->used == 0) {
    unlink(head, slab);
    Slab*& spare = st.spare[size_t(slab->cls)];
    if (spare == nullptr) spare = slab;
    else if (slab->hosted) drop(slab, nullptr);  // the host caches its memory, for any size
    else push_front(st.empty, slab);
  }
}

const Slab* SlabPool::slab_at(uintptr_t addr) const {
  auto it = by_base_.upper_bound(addr);
  if (it == by_base_.begin()) return nullptr;
  --it;
  return addr < it->first + slab_size_ ? it->second : nullptr;
}

uint64_t SlabPool::release_cached() {
  uint64_t released = 0;
  auto release = [&](StreamId stream, Slab* slab) {
    if (supply_) supply_->idle().ensure(stream);
    // A hosted slab's bytes go back to the device with its host's pages.
    if (!slab->hosted) released += slab_size_;
    drop(slab, nullptr);
  };
  if (supply_) supply_->idle().reset();
  for (auto& [stream, owned] : streams_) {
    StreamSlabs& st = *owned;
    for (Slab*& spare : st.spare) {
      if (spare) release(stream, spare);
      spare = nullptr;
    }
    while (Slab* s = st.empty) {
      unlink(st.empty, s);
      release(stream, s);
    }
  }
  return released;
}

uint64_t SlabPool::largest_free_block() const {
  uint64_t largest = 0;
  for (const auto& [base, slab] : by_base_) {
    uint64_t block = slab->used == 0 ? slab_size_ : (slab->used < slab->slots ? slab->slot_size : 0);
    if (block > largest) largest = block;
  }
  return largest;
}

void SlabPool::check(PoolTally& tally, std::vector<GranuleRun>& granules) const {
  uintptr_t end_of_previous = 0;
  for (const auto& [base, slab] : by_base_) {
    std::string where = "slab at " + std::to_string(base);
    if (slab->base != base) violated(where + ": indexed under the wrong base");
    if (base < end_of_previous) violated(where + ": overlaps the previous slab");
    end_of_previous = base + slab_size_;
    if (slab->slot_size != SizeClasses::size_of(slab->cls) || slab->slots != slab_size_ / slab->slot_size)
      violated(where + ": slot geometry disagrees with its class");
    // Slots plus the unusable tail cover the slab exactly once.
    if (uint64_t(slab->slots) * slab->slot_size > slab_size_) violated(where + ": slots overflow the slab");
    if (!slab->free.consistent()) violated(where + ": bitmap summary disagrees with its words");
    if (slab->free.count_free() != slab->slots - slab->used)
      violated(where + ": " + std::to_string(slab->free.count_free()) + " free bits but used=" +
               std::to_string(slab->used) + " of " + std::to_string(slab->slots));
    for (uint32_t i = slab->slots; i < SlotBitmap::kMaxSlots; ++i)
      if (slab->free.is_free(i)) violated(where + ": free bit past the last slot");
    if (supply_ != nullptr) {
      if (slab->granule == 0) violated(where + ": no granule behind it");
      granules.push_back({slab->granule, 1});
    }
    if (!slab->hosted) ++tally.segments;
    tally.reserved += int64_t(slab_size_);
    tally.in_use += slab->used;
    if (slab->used == 0 && slab->hosted) {  // one free block of its size, in the host's page
      ++tally.inactive_split;
      tally.inactive_split_bytes += int64_t(slab_size_);
    }
    if (slab->used > 0) {
      tally.inactive_split += slab->slots - slab->used;
      tally.inactive_split_bytes +=
          int64_t(slab->slots - slab->used) * int64_t(slab->slot_size) + int64_t(slab_size_ % slab->slot_size);
    }
  }
  // Every slab with free slots is in its class's partial list (or is the
  // spare / in the empty list when wholly free); full slabs are in none.
  size_t listed = 0;
  for (const auto& [stream, owned] : streams_) {
    const StreamSlabs& st = *owned;
    for (size_t cls = 0; cls < st.partial.size(); ++cls) {
      for (const Slab* s = st.partial[cls]; s; s = s->next) {
        ++listed;
        if (s->stream != stream || s->cls != int(cls) || s->used == 0 || !s->free.any())
          violated("slab at " + std::to_string(s->base) + ": wrong partial list");
        if (by_base_.find(s->base) == by_base_.end()) violated("partial list holds a released slab");
      }
      if (const Slab* s = st.spare[cls]) {
        ++listed;
        if (s->used != 0 || s->cls != int(cls) || s->stream != stream) violated("bad spare slab");
      }
    }
    for (const Slab* s = st.empty; s; s = s->next, ++listed)
      if (s->used != 0 || s->stream != stream) violated("bad slab in the empty list");
  }
  size_t expected = 0;
  for (const auto& [base, slab] : by_base_) expected += (slab->used < slab->slots) ? 1 : 0;
  if (listed != expected)
    violated(std::to_string(listed) + " slabs listed but " + std::to_string(expected) + " have free slots");
}

void SlabPool::for_each_hosted(absl::FunctionRef<void(const Slab&)> f) const {
  for (const auto& [base, slab] : by_base_)
    if (slab->hosted) f(*slab);
}

void SlabPool::append_layout(Layout& out, const std::function<uint64_t(uintptr_t)>& requested_of) const {
  for (const auto& [base, slab] : by_base_) {
    if (slab->hosted) continue;  // within its host's segment
    SegmentLayout seg{base, slab_size_, Pool::kSmall, slab->stream, {}, supply_ != nullptr ? supply_->granule() : 0};
    append_blocks(*slab, seg.blocks, requested_of);
    out.push_back(std::move(seg));
  }
}

void SlabPool::append_blocks(const Slab& slab, std::vector<BlockLayout>& out,
                             const std::function<uint64_t(uintptr_t)>& requested_of) const {
  const uintptr_t base = slab.base;
  if (slab.used == 0) {  // reformattable into any class: one hole
    out.push_back({base, slab_size_, 0, false});
    return;
  }
  uint64_t free_run = 0;  // bytes of the free run ending at slot i
  auto close_run = [&](uintptr_t end) {
    if (free_run > 0) out.push_back({end - free_run, free_run, 0, false});
    free_run = 0;
  };
  for (uint32_t i = 0; i < slab.slots; ++i) {
    uintptr_t addr = base + uint64_t(i) * slab.slot_size;
    if (slab.free.is_free(i)) {
      free_run += slab.slot_size;
      continue;
    }
    close_run(addr);
    out.push_back({addr, slab.slot_size, requested_of(addr), true});
  }
  uintptr_t slots_end = base + uint64_t(slab.slots) * slab.slot_size;
  close_run(slots_end);
  // The tail no slot fits in stays its own block: it can never be handed out.
  if (slots_end < base + slab_size_) out.push_back({slots_end, base + slab_size_ - slots_end, 0, false});
}

}  // namespace hbmalloc::hbm

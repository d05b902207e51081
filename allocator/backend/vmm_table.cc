#include "backend/vmm_table.h"

#include <iterator>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {
std::string span(uint64_t addr, uint64_t bytes) {
  return "[" + std::to_string(addr) + ", +" + std::to_string(bytes) + ")";
}
}  // namespace

void VmmTable::misuse(const char* op, const std::string& why) const {
  throw Error(ErrorCode::kBackend, std::string(who_) + ": " + op + ": " + why);
}

void VmmTable::check_aligned(const char* op, uint64_t addr, uint64_t bytes) const {
  if (bytes == 0 || addr % granularity_ != 0 || bytes % granularity_ != 0)
    misuse(op, "address " + std::to_string(addr) + " or size " + std::to_string(bytes) +
                   " is zero or not a multiple of the granularity " + std::to_string(granularity_));
}

void VmmTable::add_range(uint64_t base, uint64_t bytes) {
  check_aligned("reserve_range", base, bytes);
  ranges_.emplace(base, bytes);
}

void VmmTable::remove_range(uint64_t base, uint64_t bytes) {
  auto it = ranges_.find(base);
  if (it == ranges_.end() || it->second != bytes)
    misuse("release_range", "no reserved range " + span(base, bytes));
  auto m = mappings_.lower_bound(base);
  if (m != mappings_.end() && m->first < base + bytes)
    misuse("release_range", "the range still has a mapping at " + std::to_string(m->first));
  ranges_.erase(it);
}

GranuleId VmmTable::add_granule(uint64_t bytes, uint64_t payload) {
  check_aligned("create_granule", 0, bytes);
  GranuleId id = next_granule_++;
  granules_.insert(id, Granule{bytes, payload, 0});
  return id;
}

VmmTable::Granule VmmTable::remove_granule(GranuleId id) {
  Granule* g = id == 0 ? nullptr : granules_.find(id);
  if (g == nullptr) misuse("release_granule", "unknown granule " + std::to_string(id));
  if (g->mapped_at != 0) misuse("release_granule", "granule still mapped at " + std::to_string(g->mapped_at));
  Granule out = *g;
  granules_.erase_found(g);
  return out;
}

const VmmTable::Granule& VmmTable::map(uint64_t addr, GranuleId id) {
  Granule* g = id == 0 ? nullptr : granules_.find(id);
  if (g == nullptr) misuse("map", "unknown granule " + std::to_string(id));
  if (g->mapped_at != 0) misuse("map", "granule already mapped at " + std::to_string(g->mapped_at));
  check_aligned("map", addr, g->size);
  auto range = ranges_.upper_bound(addr);
  if (range == ranges_.begin() || addr + g->size > std::prev(range)->first + std::prev(range)->second)
    misuse("map", span(addr, g->size) + " is not inside a reserved range");
  auto next = mappings_.lower_bound(addr);
  bool overlaps = next != mappings_.end() && next->first < addr + g->size;
  if (next != mappings_.begin()) {
    auto prev = std::prev(next);
    overlaps = overlaps || prev->first + prev->second.size > addr;
  }
  if (overlaps) misuse("map", "address " + std::to_string(addr) + " is already mapped");
  mappings_.emplace_hint(next, addr, Mapping{id, g->size, false});
  g->mapped_at = addr;
  return *g;
}

std::pair<VmmTable::Mappings::iterator, VmmTable::Mappings::iterator> VmmTable::whole_mappings(const char* op,
                                                                                               uint64_t addr,
                                                                                               uint64_t bytes) {
  check_aligned(op, addr, bytes);
  auto first = mappings_.find(addr);
  if (first == mappings_.end()) misuse(op, "no mapping starts at " + std::to_string(addr));
  auto it = first;
  uint64_t cursor = addr;
  while (cursor < addr + bytes) {
    if (it == mappings_.end() || it->first != cursor)
      misuse(op, span(addr, bytes) + " is not mapped at " + std::to_string(cursor));
    cursor += it->second.size;
    ++it;
  }
  if (cursor != addr + bytes) misuse(op, span(addr, bytes) + " ends inside a granule");
  return {first, it};
}

void VmmTable::set_access(uint64_t addr, uint64_t bytes) {
  auto [first, last] = whole_mappings("set_access", addr, bytes);
  for (auto it = first; it != last; ++it) it->second.access = true;
}

std::pair<uint64_t, const VmmTable::Mapping*> VmmTable::mapping_covering(uint64_t addr) const {
  auto it = mappings_.upper_bound(addr);
  if (it == mappings_.begin()) return {0, nullptr};
  --it;
  if (addr >= it->first + it->second.size) return {0, nullptr};
  return {it->first, &it->second};
}

GranuleId VmmTable::granule_mapped_at(uint64_t addr) const {
  auto it = mappings_.find(addr);
  return it == mappings_.end() ? 0 : it->second.granule;
}

bool VmmTable::accessible(uint64_t addr, uint64_t bytes) const {
  uint64_t cursor = addr;
  while (cursor < addr + bytes) {
    auto [start, m] = mapping_covering(cursor);
    if (m == nullptr || !m->access) return false;
    cursor = start + m->size;
  }
  return true;
}

}  // namespace hbmalloc

// What a backend's VMM operations have done so far: reserved ranges, granules
// and mappings, with every call checked against the Backend contract before
// anything changes (aligned, inside a reserved range, not mapped twice, whole
// granules). The sim backend is this table and nothing more; the host backend
// does the real mapping beside it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "absl/container/btree_map.h"
#include "backend/backend.h"
#include "core/pointer_map.h"

namespace hbmalloc {

class VmmTable {
 public:
  struct Granule {
    uint64_t size = 0;
    uint64_t payload = 0;    // the backend's own (host: offset in its memory file)
    uint64_t mapped_at = 0;  // 0: not mapped
  };
  struct Mapping {
    GranuleId granule;
    uint64_t size;
    bool access;
  };

  // `who` names the backend in errors.
  // granularity: a power of two.
  VmmTable(const char* who, uint64_t granularity) : who_(who), granularity_(granularity) {}

  uint64_t granularity() const { return granularity_; }
  // Throws unless bytes is a positive multiple of the granularity.
  void check_size(const char* op, uint64_t bytes) const {
    if (bytes == 0 || (bytes & (granularity_ - 1)) != 0) [[unlikely]]
      check_aligned(op, 0, bytes);
  }

  void add_range(uint64_t base, uint64_t bytes);
  // Checks that [base, +bytes) is a whole reserved range with nothing mapped, then forgets it.
  void remove_range(uint64_t base, uint64_t bytes);
  // Records a new granule under `id`, or under the next free id when 0.
  GranuleId add_granule(uint64_t bytes, uint64_t payload, GranuleId id = 0);
  // Checks the granule exists and is unmapped, then forgets it.
  Granule remove_granule(GranuleId granule);
  // Checks and records the mapping; returns the granule.
  const Granule& map(uint64_t addr, GranuleId granule);
  void set_access(uint64_t addr, uint64_t bytes);
  // Checks [addr, +bytes) is whole mappings, calls f(addr, granule) for each
  // (if f throws, the table is unchanged), then forgets them.
  template <typename F>
  void unmap(uint64_t addr, uint64_t bytes, F&& f) {
    auto [first, last] = whole_mappings("unmap", addr, bytes);
    for (auto it = first; it != last; ++it) f(it->first, it->second.granule);
    for (auto it = first; it != last; ++it) granules_.find(it->second.granule)->mapped_at = 0;
    mappings_.erase(first, last);
  }

  const Granule* granule(GranuleId id) const { return id == 0 ? nullptr : granules_.find(id); }
  // The mapping covering addr, as (its start, mapping), or nullptr.
  std::pair<uint64_t, const Mapping*> mapping_covering(uint64_t addr) const;
  GranuleId granule_mapped_at(uint64_t addr) const;
  bool accessible(uint64_t addr, uint64_t bytes) const;
  size_t granules() const { return granules_.size(); }
  size_t mappings() const { return mappings_.size(); }
  // f(addr, bytes) for every mapping with access set, in address order.
  template <typename F>
  void for_each_accessible(F&& f) const {
    for (const auto& [addr, m] : mappings_)
      if (m.access) f(addr, m.size);
  }
  size_t ranges() const { return ranges_.size(); }

 private:
  using Mappings = absl::btree_map<uint64_t, Mapping>;
  [[noreturn]] void misuse(const char* op, const std::string& why) const;
  void check_aligned(const char* op, uint64_t addr, uint64_t bytes) const;
  // The mappings that tile [addr, addr + bytes) exactly, as [first, last);
  // throws when the range is not whole contiguous mappings.
  std::pair<Mappings::iterator, Mappings::iterator> whole_mappings(const char* op, uint64_t addr, uint64_t bytes);

  const char* who_;
  uint64_t granularity_;
  absl::btree_map<uint64_t, uint64_t> ranges_;  // reserved: base -> size
  PointerMap<Granule> granules_;                // by id
  GranuleId next_granule_ = 1;
  Mappings mappings_;  // by address
};

}  // namespace hbmalloc

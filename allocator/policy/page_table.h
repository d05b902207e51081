// Which granule is mapped at each page of a reserved range, kept as runs of
// pages whose granules have consecutive ids: a page-mapped segment costs
// memory by how often it was mapped and unmapped, never by its bytes (a
// 256 TiB request is one run, not 2^27 page entries).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/container/btree_map.h"
#include "backend/backend.h"

namespace hbmalloc {

class PageTable {
 public:
  // Pages [page, page + run.count) now hold run's granules, in order. They
  // must be unmapped (Error(kInvariant) otherwise, the table unchanged).
  void map(uint64_t page, GranuleRun run);
  // Pages [page, page + count), which must all be mapped (Error(kInvariant)
  // otherwise, the table unchanged), lose their granules; these are appended
  // to out in page order.
  void unmap(uint64_t page, uint64_t count, std::vector<GranuleRun>& out);

  // The granule at page, 0 when none is mapped there.
  GranuleId at(uint64_t page) const;
  uint64_t mapped_pages() const { return mapped_; }
  // One past the last mapped page (0 when none is); pages below it are all
  // mapped exactly when it equals mapped_pages().
  uint64_t end_page() const { return runs_.empty() ? 0 : runs_.rbegin()->first + runs_.rbegin()->second.count; }
  // Runs kept: what the table costs.
  size_t runs() const { return runs_.size(); }

  // f(first page, run) for every run, in page order.
  template <typename F>
  void for_each_run(F&& f) const {
    for (const auto& [page, run] : runs_) f(page, run);
  }
  // f(from, to) for each stretch of mapped pages within [first, end), as
  // [from, to) with no mapped page just outside it inside the range, in page order.
  template <typename F>
  void for_each_mapped_in(uint64_t first, uint64_t end, F&& f) const {
    if (first >= end) return;
    auto it = runs_.upper_bound(first);
    if (it != runs_.begin()) --it;
    uint64_t from = 0, to = 0;
    bool open = false;
    for (; it != runs_.end() && it->first < end; ++it) {
      const uint64_t lo = std::max(it->first, first), hi = std::min(it->first + it->second.count, end);
      if (lo >= hi) continue;
      if (open && lo != to) {
        f(from, to);
        open = false;
      }
      if (!open) from = lo;
      to = hi;
      open = true;
    }
    if (open) f(from, to);
  }
  bool is_mapped(uint64_t page) const { return covering(page) != runs_.end(); }

  // f(first page, pages) for each stretch of mapped pages with unmapped (or
  // the table's ends) on both sides, in page order.
  template <typename F>
  void for_each_stretch(F&& f) const {
    for_each_mapped_in(0, UINT64_MAX, [&](uint64_t from, uint64_t to) { f(from, to - from); });
  }

 private:
  using Runs = absl::btree_map<uint64_t, GranuleRun>;  // first page -> its run
  // The run covering page, or end().
  Runs::const_iterator covering(uint64_t page) const;

  Runs runs_;
  uint64_t mapped_ = 0;
};

}  // namespace hbmalloc

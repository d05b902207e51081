#include "policy/page_table.h"

#include <algorithm>
#include <string>

#include "core/helpers.h"

namespace hbmalloc {

PageTable::Runs::const_iterator PageTable::covering(uint64_t page) const {
  auto it = runs_.upper_bound(page);
  if (it == runs_.begin()) return runs_.end();
  --it;
  return page < it->first + it->second.count ? it : runs_.end();
}

GranuleId PageTable::at(uint64_t page) const {
  auto it = covering(page);
  return it == runs_.end() ? 0 : it->second.first + (page - it->first);
}

void PageTable::map(uint64_t page, GranuleRun run) {
  if (run.count == 0) return;
  const uint64_t end = page + run.count;
  // One search: the first run at or past `page`, and the run before it.
  auto next = runs_.lower_bound(page);
  const auto prev = next != runs_.begin() ? std::prev(next) : runs_.end();
  if ((next != runs_.end() && next->first < end) || (prev != runs_.end() && prev->first + prev->second.count > page))
    violated("page table: pages " + std::to_string(page) + ".." + std::to_string(end - 1) + " are mapped already");
  mapped_ += run.count;
  // A run continuing its neighbours' pages and ids joins them: growing a
  // segment a batch at a time stays one run, extended in place.
  const bool joins_next = next != runs_.end() && next->first == end && run.end() == next->second.first;
  if (prev != runs_.end() && prev->first + prev->second.count == page && prev->second.end() == run.first) {
    prev->second.count += run.count;
    if (joins_next) {
      prev->second.count += next->second.count;
      runs_.erase(next);
    }
    return;
  }
  if (joins_next) {
    run.count += next->second.count;
    next = runs_.erase(next);
  }
  runs_.emplace_hint(next, page, run);
}

void PageTable::unmap(uint64_t page, uint64_t count, std::vector<GranuleRun>& out) {
  if (count == 0) return;
  const uint64_t end = page + count;
  auto first = covering(page);
  // Every page of the range mapped: the runs from `first` follow each other without a hole.
  uint64_t cursor = page;
  auto last = first;
  for (; cursor < end; ++last) {
    if (last == runs_.end() || last->first > cursor)
      violated("page table: page " + std::to_string(cursor) + " is unmapped, yet unmapped again");
    cursor = last->first + last->second.count;
  }
  // What stays of the first and last runs outside the range.
  const uint64_t head_page = first->first;
  const GranuleRun head{first->second.first, page - head_page};
  auto back = std::prev(last);
  const GranuleRun tail{back->second.first + (end - back->first), cursor - end};
  for (auto it = first; it != last; ++it) {
    const uint64_t lo = std::max(it->first, page), hi = std::min(it->first + it->second.count, end);
    const GranuleRun part{it->second.first + (lo - it->first), hi - lo};
    if (!out.empty() && out.back().end() == part.first) out.back().count += part.count;
    else out.push_back(part);
  }
  runs_.erase(first, last);
  if (head.count > 0) runs_.emplace(head_page, head);
  if (tail.count > 0) runs_.emplace(end, tail);
  mapped_ -= count;
}

}  // namespace hbmalloc

#include "report/unlisted.h"

#include <algorithm>
#include <utility>

#include "hbmalloc/config.hpp"

namespace hbmalloc::report {

std::string sum_up(const std::vector<Unlisted>& rest) {
  if (rest.empty()) return "";
  std::vector<std::pair<std::string, size_t>> kinds;  // in order of first appearance
  uint64_t smallest = UINT64_MAX, largest = 0, first = UINT64_MAX, last = 0;
  for (const Unlisted& u : rest) {
    auto it = std::find_if(kinds.begin(), kinds.end(), [&](const auto& k) { return k.first == u.kind; });
    if (it == kinds.end()) kinds.emplace_back(u.kind, 1);
    else ++it->second;
    smallest = std::min(smallest, u.size);
    largest = std::max(largest, u.size);
    first = std::min(first, u.event);
    last = std::max(last, u.event);
  }
  std::string out = std::to_string(rest.size()) + " more, events " + std::to_string(first) + " to " +
                    std::to_string(last) + ":";
  for (size_t i = 0; i < kinds.size(); ++i)
    out += (i ? ", " : " ") + kinds[i].first + " " + std::to_string(kinds[i].second);
  const std::string low = format_bytes(smallest), high = format_bytes(largest);
  out += "; requests of " + low + (high != low ? " to " + high : "");
  return out;
}

}  // namespace hbmalloc::report

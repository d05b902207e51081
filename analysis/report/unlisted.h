// Reports write out the first OOMs (or failed requests) in full and sum up
// the rest in one line: a device far too small, or a job that retries after
// each OOM, fails thousands of requests. The JSON lists every one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hbmalloc::report {

inline constexpr size_t kOomsListed = 16;

// A failed request past those listed: where, how large, and what kind (its
// cause, or what became of it in the replay).
struct Unlisted {
  uint64_t event = 0, size = 0;
  std::string kind;
};

// "N more, events A to B: kind n, kind m; requests of X to Y" ("" for none).
std::string sum_up(const std::vector<Unlisted>& rest);

// The items of `all` past the first kOomsListed, as Unlisted by `f`.
template <typename T, typename F>
std::vector<Unlisted> unlisted(const std::vector<T>& all, F&& f) {
  std::vector<Unlisted> rest;
  for (size_t i = kOomsListed; i < all.size(); ++i) rest.push_back(f(all[i]));
  return rest;
}

}  // namespace hbmalloc::report

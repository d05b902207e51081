#include "replay/lcs.h"

#include <algorithm>
#include <bit>
#include <utility>
#include <vector>

namespace hbmalloc::replay {

uint64_t lcs_length(std::span<const uint64_t> a, std::span<const uint64_t> b) {
  // Equal ends match in any LCS: count them and keep the middle.
  size_t prefix = 0;
  while (prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
  a = a.subspan(prefix);
  b = b.subspan(prefix);
  size_t suffix = 0;
  while (suffix < a.size() && suffix < b.size() && a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) ++suffix;
  a = a.first(a.size() - suffix);
  b = b.first(b.size() - suffix);
  if (a.empty() || b.empty()) return prefix + suffix;
  if (a.size() > b.size()) std::swap(a, b);  // the bit vectors run along the shorter one

  // Where each symbol occurs in a, sorted by symbol then position.
  std::vector<std::pair<uint64_t, uint32_t>> where(a.size());
  for (size_t i = 0; i < a.size(); ++i) where[i] = {a[i], uint32_t(i)};
  std::sort(where.begin(), where.end());

  const size_t words = (a.size() + 63) / 64;
  // A symbol that occurs often in a gets its match mask built once: setting
  // its bits anew for every symbol of b would cost |a| |b|, not |a| |b| / 64
  // (two symbols, 100,000 times each). Masks take at most kMaskBytes.
  constexpr size_t kFrequent = 64, kMaskBytes = size_t{64} << 20;
  std::vector<std::pair<uint64_t, size_t>> mask_of;  // symbol -> its mask's first word in masks
  std::vector<uint64_t> masks;
  for (size_t i = 0; i < where.size();) {
    size_t j = i;
    while (j < where.size() && where[j].first == where[i].first) ++j;
    if (j - i >= kFrequent && (masks.size() + words) * sizeof(uint64_t) <= kMaskBytes) {
      mask_of.emplace_back(where[i].first, masks.size());
      masks.resize(masks.size() + words, 0);
      for (size_t k = i; k < j; ++k) masks[mask_of.back().second + where[k].second / 64] |= uint64_t(1) << (where[k].second % 64);
    }
    i = j;
  }
  std::vector<uint64_t> v(words, ~uint64_t(0)), u(words);
  for (uint64_t symbol : b) {
    const uint64_t* match = nullptr;
    auto built = std::lower_bound(mask_of.begin(), mask_of.end(), std::pair<uint64_t, size_t>{symbol, 0});
    if (built != mask_of.end() && built->first == symbol) {
      match = masks.data() + built->second;
    } else {
      auto first = std::lower_bound(where.begin(), where.end(), std::pair<uint64_t, uint32_t>{symbol, 0});
      if (first == where.end() || first->first != symbol) continue;  // no match: V stays
      std::fill(u.begin(), u.end(), 0);
      for (auto it = first; it != where.end() && it->first == symbol; ++it)
        u[it->second / 64] |= uint64_t(1) << (it->second % 64);
      match = u.data();
    }
    // V = (V + (V & M)) | (V & ~M), M = match(symbol), across the words;
    // only the addition carries from word to word.
    uint64_t carry = 0;
    for (size_t w = 0; w < words; ++w) {
      const uint64_t x = v[w], y = x & match[w];
      const uint64_t sum = x + y + carry;
      carry = (sum < x || (carry && sum == x)) ? 1 : 0;
      v[w] = sum | (x & ~match[w]);
    }
  }
  // Each zero bit among the first |a| is one matched symbol.
  uint64_t zeros = 0;
  for (size_t w = 0; w < words; ++w) {
    const uint64_t valid = w + 1 < words || a.size() % 64 == 0 ? ~uint64_t(0) : (uint64_t(1) << (a.size() % 64)) - 1;
    zeros += std::popcount(~v[w] & valid);
  }
  return prefix + suffix + zeros;
}

BoundedLcs lcs_length_bounded(std::span<const uint64_t> a, std::span<const uint64_t> b, uint64_t max_work) {
  const auto work = [](uint64_t n, uint64_t m) { return std::min(n, m) == 0 ? 0 : (std::min(n, m) + 63) / 64 * std::max(n, m); };
  if (work(a.size(), b.size()) <= max_work) return {lcs_length(a, b), true};
  // A part costs (n/k)(m/k)/64, so k parts cost the whole work / k.
  const uint64_t whole = work(a.size(), b.size());
  const uint64_t parts = std::min<uint64_t>(std::max(a.size(), b.size()), whole / std::max<uint64_t>(max_work, 1) + 1);
  BoundedLcs out{0, false};
  for (uint64_t i = 0; i < parts; ++i) {
    const size_t a0 = size_t(a.size() * i / parts), a1 = size_t(a.size() * (i + 1) / parts);
    const size_t b0 = size_t(b.size() * i / parts), b1 = size_t(b.size() * (i + 1) / parts);
    out.length += lcs_length(a.subspan(a0, a1 - a0), b.subspan(b0, b1 - b0));
  }
  return out;
}

}  // namespace hbmalloc::replay

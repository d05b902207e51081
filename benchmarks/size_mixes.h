// Deterministic request-size mixes for the allocator micro benchmarks.
//
// Every mix is a fixed array of kMixLen sizes drawn from a fixed-seed
// generator of our own (splitmix64), so the arrays are bit-identical on every
// compiler, standard library and machine, and two runs compare like for like.
//
//   small:  [1 B, 1 MiB], weighted like the tensors of a training step:
//             8%  [1 B, 512 B)        scalars, losses, tiny bias vectors
//            72%  [512 B, 64 KiB]     biases, norms, small activations/grads
//            15%  (64 KiB, 256 KiB]   mid-size activations
//             5%  (256 KiB, 1 MiB]    the odd larger small tensor
//   large:  (1 MiB, 256 MiB]:
//            60%  (1 MiB, 16 MiB]     weight matrices, activations
//            30%  (16 MiB, 64 MiB]    big activations, optimizer states
//            10%  (64 MiB, 256 MiB]   embeddings, logits
//   mixed:  each entry is a fresh small draw with probability 0.8, otherwise a
//           fresh large draw.
//
// Inside each band sizes are log-uniform (small tensors are much more common
// than their byte share suggests) and, from 4 B up, a multiple of 4 (fp32 /
// bf16x2 elements), like numel * element_size.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace hbmalloc::bench {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;

// Entries per mix. A power of two, so a running index wraps with a mask.
inline constexpr std::size_t kMixLen = 4096;
static_assert((kMixLen & (kMixLen - 1)) == 0, "kMixLen must be a power of two");

enum class Mix { kSmall, kLarge, kMixed };

inline const char* mix_name(Mix mix) {
  switch (mix) {
    case Mix::kSmall: return "small";
    case Mix::kLarge: return "large";
    case Mix::kMixed: return "mixed";
  }
  return "?";
}

// splitmix64: tiny, fast, and fully specified (unlike std::*_distribution,
// whose output differs between standard libraries).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1), 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

namespace detail {

// Log-uniform in [lo, hi], then rounded down to a multiple of 4 (from 4 B up)
// without leaving [lo, hi].
inline uint64_t log_uniform(SplitMix64& rng, uint64_t lo, uint64_t hi) {
  const double llo = std::log(static_cast<double>(lo));
  const double lhi = std::log(static_cast<double>(hi) + 1.0);
  auto size = static_cast<uint64_t>(std::exp(llo + rng.uniform() * (lhi - llo)));
  size = std::clamp(size, lo, hi);
  if (size >= 4) size = std::max(lo, size & ~uint64_t{3});
  return size;
}

struct Band {
  double weight;  // cumulative probability up to and including this band
  uint64_t lo, hi;
};

template <std::size_t N>
inline uint64_t draw(SplitMix64& rng, const Band (&bands)[N]) {
  const double u = rng.uniform();
  for (const Band& b : bands) {
    if (u < b.weight) return log_uniform(rng, b.lo, b.hi);
  }
  return log_uniform(rng, bands[N - 1].lo, bands[N - 1].hi);
}

inline constexpr Band kSmallBands[] = {
    {0.08, 1, 511},
    {0.80, 512, 64 * kKiB},
    {0.95, 64 * kKiB + 1, 256 * kKiB},
    {1.00, 256 * kKiB + 1, 1 * kMiB},
};
inline constexpr Band kLargeBands[] = {
    {0.60, 1 * kMiB + 1, 16 * kMiB},
    {0.90, 16 * kMiB + 1, 64 * kMiB},
    {1.00, 64 * kMiB + 1, 256 * kMiB},
};

inline std::vector<uint64_t> build(Mix mix) {
  std::vector<uint64_t> sizes;
  sizes.reserve(kMixLen);
  SplitMix64 small_rng(0x68626d616c6c6f63ull);  // "hbmalloc"
  SplitMix64 large_rng(0x6c61726765000001ull);
  SplitMix64 pick_rng(0x6d69786564000002ull);
  for (std::size_t i = 0; i < kMixLen; ++i) {
    bool small = mix == Mix::kSmall || (mix == Mix::kMixed && pick_rng.uniform() < 0.8);
    sizes.push_back(small ? draw(small_rng, kSmallBands) : draw(large_rng, kLargeBands));
  }
  return sizes;
}

}  // namespace detail

// The kMixLen sizes of `mix`, built once.
inline const std::vector<uint64_t>& mix_sizes(Mix mix) {
  static const std::vector<uint64_t> small = detail::build(Mix::kSmall);
  static const std::vector<uint64_t> large = detail::build(Mix::kLarge);
  static const std::vector<uint64_t> mixed = detail::build(Mix::kMixed);
  switch (mix) {
    case Mix::kSmall: return small;
    case Mix::kLarge: return large;
    case Mix::kMixed: return mixed;
  }
  return small;
}

// One line for the benchmark context: count, min / median / mean / p99 / max.
inline std::string describe_mix(Mix mix) {
  std::vector<uint64_t> s = mix_sizes(mix);
  std::sort(s.begin(), s.end());
  long double sum = 0;
  for (uint64_t v : s) sum += static_cast<long double>(v);
  auto fmt = [](long double bytes) {
    const char* unit = "B";
    if (bytes >= kMiB) { bytes /= kMiB; unit = "MiB"; }
    else if (bytes >= kKiB) { bytes /= kKiB; unit = "KiB"; }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1Lf %s", bytes, unit);
    return std::string(buf);
  };
  return std::to_string(s.size()) + " sizes; min " + fmt(s.front()) + ", median " +
         fmt(s[s.size() / 2]) + ", mean " + fmt(sum / s.size()) + ", p99 " +
         fmt(s[s.size() * 99 / 100]) + ", max " + fmt(s.back());
}

}  // namespace hbmalloc::bench

#include "policy/hbm/hbm_knobs.h"

#include <algorithm>

#include "policy/cca/cca_config.h"

namespace hbmalloc::hbm {

// Every key of HBMALLOC_CONF that is not PyTorch's.
bool owns_key(std::string_view key) { return !cca::is_pytorch_key(key); }

PolicySettings normalized(PolicySettings s) {
  auto value = [&](std::string_view key) -> std::string {
    for (const auto& [k, v] : s)
      if (k == key) return v;
    return "";
  };
  // Page-mapped large blocks (tune replays on the sim, which has VMM) use
  // no segment_round; plain segments no remap knobs; only remap:pressure
  // reads pressure_threshold; a budget (and its window) or overhead limits
  // nothing that never remaps.
  const bool vmm = value("vmm") != "off";
  const std::string remap = value("remap");
  std::erase_if(s, [&](const auto& kv) {
    const auto& [k, v] = kv;
    if (k == "vmm") return v == "on";
    if (k == "segment_round") return vmm;
    if (k == "remap") return !vmm || v == "pressure";
    if (k == "granule_size") return !vmm;
    if (k == "pressure_threshold") return !vmm || (!remap.empty() && remap != "pressure");
    if (k == "remap_budget" || k == "remap_window" || k == "remap_overhead") return !vmm || remap == "never";
    return false;
  });
  return s;
}

// A slab must hold at least two of the largest small size: a slab_size is
// judged beside the least small_size, which any slab fits, and a small_size
// beside the largest slab_size, which fits any.
PolicySettings alone(std::string_view key, std::string_view value) {
  PolicySettings s;
  if (key != "small_size") s.emplace_back("small_size", "512");
  if (key == "small_size") s.emplace_back("slab_size", "2MiB");
  s.emplace_back(std::string(key), std::string(value));
  return s;
}

TuneKnobs tune_knobs() {
  return {{"small_size", {"unset", "256KiB"}},
          {"slab_size", {"unset", "1MiB"}},
          {"mid_size", {"unset", "0"}},
          {"vmm", {"unset", "off"}},
          {"remap", {"unset", "always", "never"}},
          {"pressure_threshold", {"unset", "0.9", "0.99"}},
          {"segment_round", {"unset", "1MiB", "8MiB"}}};
}

}  // namespace hbmalloc::hbm

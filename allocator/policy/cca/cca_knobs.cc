#include "policy/cca/cca_knobs.h"

#include <algorithm>

namespace hbmalloc::cca {

PolicySettings normalized(PolicySettings s) {
  auto value = [&](std::string_view key) -> std::string {
    for (const auto& [k, v] : s)
      if (k == key) return v;
    return "";
  };
  std::erase_if(s, [&](const auto& kv) {
    const auto& [k, v] = kv;
    if (k == "expandable_segments") return v == "False";
    if (k == "per_process_memory_fraction") return v == "1" || v == "1.0";
    if (k == "garbage_collection_threshold") {
      const std::string f = value("per_process_memory_fraction");
      return f.empty() || f == "1" || f == "1.0";  // never runs without a fraction below 1
    }
    return false;
  });
  return s;
}

PolicySettings alone(std::string_view key, std::string_view value) { return {{std::string(key), std::string(value)}}; }

TuneKnobs tune_knobs() {
  return {{"max_split_size_mb", {"unset", "64", "128", "256", "512"}},
          {"roundup_power2_divisions", {"unset", "2", "4", "8"}},
          {"expandable_segments", {"False", "True"}},
          // Garbage collection runs only under a memory fraction below 1.
          {"garbage_collection_threshold", {"unset", "0.6", "0.8"}},
          {"per_process_memory_fraction", {"unset", "0.99"}}};
}

}  // namespace hbmalloc::cca

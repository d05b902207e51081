#include "tune/grid.h"

#include <algorithm>
#include <set>

#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"

namespace hbmalloc::tune {
namespace {

using Settings = std::vector<std::pair<std::string, std::string>>;

// The knobs turned by default. A policy's new knob joins its table here.
Grid cca_grid() {
  return {"cca",
          {{"max_split_size_mb", {"unset", "64", "128", "256", "512"}},
           {"roundup_power2_divisions", {"unset", "2", "4", "8"}},
           {"expandable_segments", {"False", "True"}},
           // Garbage collection runs only under a memory fraction below 1.
           {"garbage_collection_threshold", {"unset", "0.6", "0.8"}},
           {"per_process_memory_fraction", {"unset", "0.99"}}}};
}

Grid hbm_grid() {
  return {"hbm",
          {{"small_size", {"unset", "256KiB"}},
           {"slab_size", {"unset", "1MiB"}},
           {"vmm", {"unset", "off"}},
           {"remap", {"unset", "always", "never"}},
           {"pressure_threshold", {"unset", "0.9", "0.99"}},
           {"segment_round", {"unset", "1MiB", "8MiB"}}}};
}

// The config a policy's settings make; throws Error(kConfig) for a bad one.
Config config_of(const std::string& policy, const Settings& settings) {
  return Config::parse("policy:" + policy + (settings.empty() ? "" : "," + cca::alloc_conf_text(settings)));
}

// PyTorch values that behave as the default are spelled as unset, so two
// points that run alike look alike.
Settings normalized(const std::string& policy, Settings s) {
  auto value = [&](std::string_view key) -> std::string {
    for (const auto& [k, v] : s)
      if (k == key) return v;
    return "";
  };
  if (policy == "hbm") {
    // Page-mapped large blocks (tune replays on the sim, which has VMM) use
    // no segment_round; plain segments no remap knobs; only remap:pressure
    // reads pressure_threshold.
    const bool vmm = value("vmm") != "off";
    const std::string remap = value("remap");
    std::erase_if(s, [&](const auto& kv) {
      const auto& [k, v] = kv;
      if (k == "vmm") return v == "on";
      if (k == "segment_round") return vmm;
      if (k == "remap") return !vmm || v == "pressure";
      if (k == "granule_size") return !vmm;
      if (k == "pressure_threshold") return !vmm || (!remap.empty() && remap != "pressure");
      return false;
    });
    return s;
  }
  if (policy != "cca") return s;
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

}  // namespace

Grid default_grid(std::string_view policy) {
  if (policy == "cca") return cca_grid();
  if (policy == "hbm") return hbm_grid();
  throw Error(ErrorCode::kConfig, "policy: unknown policy '" + std::string(policy) + "' (known: cca, hbm)");
}

Grid parse_grid(std::string_view policy, std::string_view text) {
  default_grid(policy);  // names an unknown policy
  Grid g{std::string(policy), {}};
  for (const auto& [key, values] : cca::split_settings(text)) {
    if (key == "policy" || key == "backend" || key == "capacity" || key == "sim_devices")
      throw Error(ErrorCode::kConfig, key + ": not a knob to tune (tune has its own --policy and --capacity)");
    // A cca point is a PYTORCH_CUDA_ALLOC_CONF line: PyTorch's keys only.
    if ((g.policy == "cca") != cca::is_pytorch_key(key))
      throw Error(ErrorCode::kConfig, key + ": not a knob of policy " + g.policy +
                                          (g.policy == "cca" ? " (PyTorch's allocator keys only)" : ""));
    Knob knob{key, {}};
    // '|' separates values; a list value's own commas and colons stay.
    std::string_view rest = values;
    while (true) {
      const size_t bar = rest.find('|');
      std::string v(rest.substr(0, bar));
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t") + 1);
      if (v.empty()) throw Error(ErrorCode::kConfig, key + ": an empty value in the grid");
      if (v != kUnset) {  // names a bad value, judged alone (small_size must fit a slab: no partner here)
        Settings probe = {{key, v}};
        if (g.policy == "hbm" && key != "small_size") probe.insert(probe.begin(), {"small_size", "512"});
        config_of(g.policy, probe);
      }
      knob.values.push_back(v);
      if (bar == std::string_view::npos) break;
      rest = rest.substr(bar + 1);
    }
    g.knobs.push_back(std::move(knob));
  }
  if (g.knobs.empty()) throw Error(ErrorCode::kConfig, "the grid names no knob");
  return g;
}

uint64_t combinations(const Grid& grid) {
  uint64_t n = 1;
  for (const Knob& k : grid.knobs) {
    const uint64_t values = k.values.size();
    n = values != 0 && n > UINT64_MAX / values ? UINT64_MAX : n * values;
  }
  return n;
}

std::vector<Point> expand(const Grid& grid, const Settings& base, size_t& skipped) {
  std::vector<Point> out;
  std::set<Settings> seen;
  skipped = 0;
  const Settings first = normalized(grid.policy, grid.policy == "cca" ? base : Settings{});
  out.push_back({grid.policy, true, first, config_of(grid.policy, first)});
  seen.insert(first);
  std::vector<size_t> pick(grid.knobs.size(), 0);
  while (true) {
    Settings s = grid.policy == "cca" ? base : Settings{};
    for (size_t k = 0; k < grid.knobs.size(); ++k) {
      const Knob& knob = grid.knobs[k];
      const std::string& v = knob.values[pick[k]];
      if (v == kUnset) std::erase_if(s, [&](const auto& kv) { return kv.first == knob.key; });
      else cca::set_setting(s, knob.key, v);
    }
    s = normalized(grid.policy, std::move(s));
    try {
      Config c = config_of(grid.policy, s);
      if (seen.insert(s).second) out.push_back({grid.policy, false, s, std::move(c)});
      else ++skipped;
    } catch (const Error&) {
      ++skipped;  // a combination the policy refuses
    }
    size_t k = 0;  // the next combination, the last knob turning fastest
    for (k = grid.knobs.size(); k-- > 0;) {
      if (++pick[k] < grid.knobs[k].values.size()) break;
      pick[k] = 0;
    }
    if (k == size_t(-1)) break;
  }
  return out;
}

std::string conf_line(const Point& point) {
  if (point.policy == "cca") return "PYTORCH_CUDA_ALLOC_CONF=" + cca::alloc_conf_text(point.settings);
  return "HBMALLOC_CONF=policy:" + point.policy +
         (point.settings.empty() ? "" : "," + cca::alloc_conf_text(point.settings));
}

}  // namespace hbmalloc::tune

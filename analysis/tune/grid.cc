#include "tune/grid.h"

#include <algorithm>
#include <set>

#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"
#include "policy/policy_catalog.h"

namespace hbmalloc::tune {
namespace {

using Settings = std::vector<std::pair<std::string, std::string>>;

// The config a policy's settings make; throws Error(kConfig) for a bad one.
Config config_of(const std::string& policy, const Settings& settings) {
  return Config::parse("policy:" + policy + (settings.empty() ? "" : "," + cca::alloc_conf_text(settings)));
}

// Settings a policy that reads PyTorch's keys starts from: what the trace recorded.
Settings start_of(const PolicyDescription& p, const Settings& base) { return p.reads_pytorch_settings ? base : Settings{}; }

}  // namespace

Grid default_grid(std::string_view policy) {
  Grid g{std::string(policy), {}};
  for (auto& [key, values] : policy_named(policy).tune_knobs()) g.knobs.push_back({key, values});
  return g;
}

Grid parse_grid(std::string_view policy, std::string_view text) {
  const PolicyDescription& p = policy_named(policy);  // names an unknown policy
  Grid g{std::string(policy), {}};
  for (const auto& [key, values] : cca::split_settings(text)) {
    if (key == "policy" || key == "backend" || key == "capacity" || key == "sim_devices" || key == "sim_lag")
      throw Error(ErrorCode::kConfig, key + ": not a knob to tune (tune has its own --policy and --capacity)");
    // A point is one ready line of the policy's variable: its own keys only.
    if (!p.owns_key(key))
      throw Error(ErrorCode::kConfig, key + ": not a knob of policy " + g.policy + " (" +
                                          std::string(p.conf_variable) + " keys only)");
    Knob knob{key, {}};
    // '|' separates values; a list value's own commas and colons stay.
    std::string_view rest = values;
    while (true) {
      const size_t bar = rest.find('|');
      std::string v(rest.substr(0, bar));
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t") + 1);
      if (v.empty()) throw Error(ErrorCode::kConfig, key + ": an empty value in the grid");
      if (v != kUnset) config_of(g.policy, p.alone(key, v));  // names a bad value, judged alone
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
  const PolicyDescription& p = policy_named(grid.policy);
  const Settings first = p.normalized(start_of(p, base));
  out.push_back({grid.policy, true, first, config_of(grid.policy, first)});
  seen.insert(first);
  std::vector<size_t> pick(grid.knobs.size(), 0);
  while (true) {
    Settings s = start_of(p, base);
    for (size_t k = 0; k < grid.knobs.size(); ++k) {
      const Knob& knob = grid.knobs[k];
      const std::string& v = knob.values[pick[k]];
      if (v == kUnset) std::erase_if(s, [&](const auto& kv) { return kv.first == knob.key; });
      else cca::set_setting(s, knob.key, v);
    }
    s = p.normalized(std::move(s));
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

std::string conf_line(const Point& point) { return policy_named(point.policy).conf_line(point.settings); }

}  // namespace hbmalloc::tune

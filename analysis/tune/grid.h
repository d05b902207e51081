// What `hbmalloc tune` tries: per policy, knobs and the values to try for
// each, expanded into every combination (a grid point is one Config).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hbmalloc/config.hpp"

namespace hbmalloc::tune {

// "unset" as a value leaves the key at its default (or at what the trace
// recorded, for cca).
inline constexpr std::string_view kUnset = "unset";

struct Knob {
  std::string key;
  std::vector<std::string> values;
};

struct Grid {
  std::string policy;  // a name of the policy catalog
  std::vector<Knob> knobs;
};

// The default grid of a policy (cca or hbm); Error(kConfig) for another.
Grid default_grid(std::string_view policy);

// "key:v1|v2|v3,key2:v4|v5" in HBMALLOC_CONF's syntax (a list value such as
// [256:1,>:8] keeps its commas). Keys and values are checked against the
// policy's config; Error(kConfig) names the first bad one.
Grid parse_grid(std::string_view policy, std::string_view text);

struct Point {
  std::string policy;
  bool baseline = false;  // what runs with nothing tuned: the recorded settings (cca), the defaults (hbm)
  // The keys this point sets beyond the defaults, in the order of the
  // knobs (base settings first): what a ready *_CONF line says.
  std::vector<std::pair<std::string, std::string>> settings;
  Config config;
};

// The baseline first (`base` alone for cca, the defaults for hbm), then every
// combination of the grid's values on top of `base` (for cca: the settings
// the trace recorded; a knob's "unset" removes its key). Points that
// Config refuses (say small_size above half of slab_size) and points that
// behave as another one does (garbage_collection_threshold with no memory
// fraction below 1 never runs) are left out; `skipped` counts them.
std::vector<Point> expand(const Grid& grid, const std::vector<std::pair<std::string, std::string>>& base,
                          size_t& skipped);

// How many combinations the grid's values make (saturating at UINT64_MAX).
uint64_t combinations(const Grid& grid);
// Past this many combinations tune refuses a grid (each is a replay or more).
constexpr uint64_t kDefaultMaxPoints = 4096;

// The settings as a ready line: "PYTORCH_CUDA_ALLOC_CONF=..." for cca,
// "HBMALLOC_CONF=policy:hbm,..." for hbm.
std::string conf_line(const Point& point);

}  // namespace hbmalloc::tune

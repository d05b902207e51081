// The hbm policy's knobs as tune and the catalog see them: which keys are
// its, which values behave alike, and the grid tune turns by default.
#pragma once

#include <string_view>

#include "policy/policy_catalog.h"

namespace hbmalloc::hbm {

bool owns_key(std::string_view key);
PolicySettings normalized(PolicySettings settings);
PolicySettings alone(std::string_view key, std::string_view value);
TuneKnobs tune_knobs();

}  // namespace hbmalloc::hbm

// The cca policy's knobs as tune and the catalog see them: PyTorch's keys,
// the values that behave as PyTorch's defaults, and the grid tune turns.
#pragma once

#include <string_view>

#include "policy/policy_catalog.h"

namespace hbmalloc::cca {

PolicySettings normalized(PolicySettings settings);
PolicySettings alone(std::string_view key, std::string_view value);
TuneKnobs tune_knobs();

}  // namespace hbmalloc::cca

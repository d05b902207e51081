// What --json prints: indented, and never aborting on a string that is not
// UTF-8 (every trace string is safe text already; this is the last guard).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace hbmalloc::tools {

inline std::string json_text(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace hbmalloc::tools

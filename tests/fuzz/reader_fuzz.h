// The one rule of every reader fuzz target: any bytes give a Trace or an
// hbmalloc::Error with a message; anything else escaping (another
// exception, a crash, a sanitizer report) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hbmalloc/error.hpp"
#include "record/trace.h"

namespace hbmalloc::fuzz {

using Reader = trace::Trace (*)(std::string_view, const std::string&);

inline int FuzzReader(Reader reader, const uint8_t* data, size_t size) {
  try {
    reader(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const Error& e) {
    if (std::string_view(e.what()).find("fuzz") == std::string_view::npos) __builtin_trap();  // unnamed source
  }
  return 0;
}

}  // namespace hbmalloc::fuzz

// Text into HTML and SVG: escaping, so nothing from a trace (file names,
// settings) can become markup.
#pragma once

#include <string>
#include <string_view>

namespace hbmalloc::report {

// & < > " ' as entities; safe in element content and in quoted attributes.
std::string escape_html(std::string_view text);

}  // namespace hbmalloc::report

// Whole-file reads and writes for traces, with errors that name the path.
#pragma once

#include <string>
#include <string_view>

namespace hbmalloc::trace {

std::string read_whole_file(const std::string& path);
void write_whole_file(const std::string& path, std::string_view bytes);

}  // namespace hbmalloc::trace

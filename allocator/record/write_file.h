// Writing a whole file at once, with errors that name the path (the runtime's
// dumps and the analyser's writers).
#pragma once

#include <string>
#include <string_view>

namespace hbmalloc::trace {

// Creates or truncates `path` and writes `bytes`; throws Error(kInvalidArgument)
// naming the path and the system's reason when that fails.
void write_whole_file(const std::string& path, std::string_view bytes);

}  // namespace hbmalloc::trace

// Whole-file reads of traces, bounded, with errors that name the path
// (writes: record/write_file.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace hbmalloc::trace {

// The whole file, refused (Error kInvalidArgument naming the path) past
// `max_bytes`: a regular file by its size before anything is read, a stream
// (a pipe, /dev/zero) once it passes the cap. `accept_start`, when given, sees
// the first bytes read and may throw to refuse the file before the rest is
// read (a stream of zeros is no trace).
std::string read_whole_file(const std::string& path, uint64_t max_bytes,
                            const std::function<void(std::string_view)>& accept_start = nullptr);

}  // namespace hbmalloc::trace

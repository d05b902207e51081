#include "trace/file_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <sys/stat.h>

#include "hbmalloc/error.hpp"
#include "trace/input_limits.h"
#include "record/safe_text.h"

namespace hbmalloc::trace {
namespace {

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

[[noreturn]] void fail(const std::string& path, const char* what) {
  throw Error(ErrorCode::kInvalidArgument, safe_text(path) + ": " + what + ": " + std::strerror(errno));
}

[[noreturn]] void too_large(const std::string& path, uint64_t size, uint64_t max_bytes) {
  throw Error(ErrorCode::kInvalidArgument,
              safe_text(path) + ": " + (size > 0 ? std::to_string(size) + " bytes, more" : std::string("more")) + " than the " +
                  std::to_string(max_bytes) + "-byte limit on input (" + kMaxInputFlag + " raises it)");
}

}  // namespace

std::string read_whole_file(const std::string& path, uint64_t max_bytes,
                            const std::function<void(std::string_view)>& accept_start) {
  File file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) fail(path, "cannot open");
  struct stat st{};
  if (fstat(fileno(file.get()), &st) == 0 && S_ISREG(st.st_mode) && uint64_t(st.st_size) > max_bytes)
    too_large(path, uint64_t(st.st_size), max_bytes);
  std::string bytes;
  constexpr size_t kChunk = size_t{1} << 16;
  // Room for the last read too (the one that finds the end), so a regular
  // file is never reallocated to twice its size.
  if (S_ISREG(st.st_mode)) bytes.reserve(size_t(st.st_size) + kChunk);
  constexpr size_t kStartBytes = 4096;  // enough to tell a format; a short file is judged whole later
  bool started = false;
  while (true) {
    const size_t before = bytes.size();
    bytes.resize(before + kChunk);
    const size_t n = std::fread(bytes.data() + before, 1, kChunk, file.get());
    bytes.resize(before + n);
    if (n == 0) break;
    if (!started && accept_start && bytes.size() >= kStartBytes) {
      accept_start(bytes);
      started = true;
    }
    if (bytes.size() > max_bytes) too_large(path, 0, max_bytes);
  }
  // A directory opens but fails the first read.
  if (std::ferror(file.get()) != 0) fail(path, "cannot read");
  return bytes;
}

}  // namespace hbmalloc::trace

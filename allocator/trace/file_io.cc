#include "trace/file_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "hbmalloc/error.hpp"

namespace hbmalloc::trace {
namespace {

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

[[noreturn]] void fail(const std::string& path, const char* what) {
  throw Error(ErrorCode::kInvalidArgument, path + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

std::string read_whole_file(const std::string& path) {
  File file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) fail(path, "cannot open");
  std::string bytes;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) bytes.append(buffer, n);
  // A directory opens but fails the first read.
  if (std::ferror(file.get()) != 0) fail(path, "cannot read");
  return bytes;
}

void write_whole_file(const std::string& path, std::string_view bytes) {
  File file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) fail(path, "cannot create");
  if (std::fwrite(bytes.data(), 1, bytes.size(), file.get()) != bytes.size()) fail(path, "write failed");
  if (std::fclose(file.release()) != 0) fail(path, "write failed");
}

}  // namespace hbmalloc::trace

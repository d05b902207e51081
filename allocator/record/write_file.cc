#include "record/write_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "hbmalloc/error.hpp"
#include "record/safe_text.h"

namespace hbmalloc::trace {

void write_whole_file(const std::string& path, std::string_view bytes) {
  using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;
  auto fail = [&](const char* what) {
    throw Error(ErrorCode::kInvalidArgument, safe_text(path) + ": " + what + ": " + std::strerror(errno));
  };
  File file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) fail("cannot create");
  if (std::fwrite(bytes.data(), 1, bytes.size(), file.get()) != bytes.size()) fail("write failed");
  if (std::fclose(file.release()) != 0) fail("write failed");
}

}  // namespace hbmalloc::trace

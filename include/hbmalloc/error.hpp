// Errors raised by the C++ API. The C ABI turns them into hbm_last_error().
#pragma once

#include <stdexcept>
#include <string>

namespace hbmalloc {

enum class ErrorCode {
  kInvalidArgument,  // negative size, bad fraction, ...
  kConfig,           // unknown key or bad value in HBMALLOC_CONF
  kOutOfMemory,      // no memory even after releasing the cache
  kDoubleFree,       // the pointer was already freed
  kUnknownPointer,   // hbmalloc never returned this pointer
  kSizeMismatch,     // the size given to free disagrees with the block
  kBackend,          // the device runtime failed (not an out of memory)
  kInvariant,        // the invariant checker found a violation
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(std::string(error_code_name(code)) + ": " + message), code_(code), message_(message) {}
  ErrorCode code() const { return code_; }
  // what() without the code's name in front.
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

}  // namespace hbmalloc

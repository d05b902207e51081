#include "hbmalloc/error.hpp"

namespace hbmalloc {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kConfig: return "bad HBMALLOC_CONF";
    case ErrorCode::kOutOfMemory: return "out of memory";
    case ErrorCode::kDoubleFree: return "double free";
    case ErrorCode::kUnknownPointer: return "unknown pointer";
    case ErrorCode::kSizeMismatch: return "size mismatch";
    case ErrorCode::kBackend: return "backend error";
    case ErrorCode::kInvariant: return "invariant violated";
  }
  return "error";
}

}  // namespace hbmalloc

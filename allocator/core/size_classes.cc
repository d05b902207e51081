#include "core/size_classes.h"

#include "hbmalloc/error.hpp"

namespace hbmalloc {

SizeClasses::SizeClasses(uint64_t max_size) {
  if (max_size < kMinSize || max_size > (uint64_t(1) << 40))
    throw Error(ErrorCode::kConfig, "small_size: " + std::to_string(max_size) + " must be between 512 B and 1 TiB");
  count_ = index_of(max_size) + 1;
  max_size_ = size_of(count_ - 1);
}

}  // namespace hbmalloc

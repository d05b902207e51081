# Abseil from Debian (libabsl-dev), linked statically.
#
# Debian's abseil CMake targets point at the shared libraries; a libhbmalloc.so
# copied to a GPU box without Debian's Abseil must still load, so we link the
# PIC static archives instead, in one group so the linker pulls only what the
# code uses. Sets HBMALLOC_ABSL_INCLUDE_DIRS and HBMALLOC_ABSL_STATIC_LINK.
find_package(Threads REQUIRED)
find_path(HBMALLOC_ABSL_INCLUDE_DIRS absl/container/flat_hash_map.h)
find_library(HBMALLOC_ABSL_RAW_HASH_SET NAMES libabsl_raw_hash_set.a)
if(NOT HBMALLOC_ABSL_INCLUDE_DIRS OR NOT HBMALLOC_ABSL_RAW_HASH_SET)
  message(FATAL_ERROR "Abseil headers and static archives not found: apt-get install libabsl-dev")
endif()
get_filename_component(_absl_dir ${HBMALLOC_ABSL_RAW_HASH_SET} DIRECTORY)
file(GLOB _absl_archives ${_absl_dir}/libabsl_*.a)
set(HBMALLOC_ABSL_STATIC_LINK -Wl,--start-group ${_absl_archives} -Wl,--end-group)

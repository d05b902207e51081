# Abseil from Debian (libabsl-dev), linked statically.
#
# Debian's abseil CMake targets point at the shared libraries; a libhbmalloc.so
# copied to a GPU box without Debian's Abseil must still load, so we link the
# PIC static archives instead, in one group so the linker pulls only what the
# code uses. Sets HBMALLOC_ABSL_INCLUDE_DIRS and HBMALLOC_ABSL_STATIC_LINK.
#
# The library itself uses only header-only Abseil (btree_map/btree_set), so
# where the archives are missing (a GPU machine without Debian's Abseil) it
# builds from the headers alone: -DHBMALLOC_ABSL_INCLUDE_DIRS=dir (or
# CMAKE_PREFIX_PATH) names them. Tests and benchmarks need the archives.
find_package(Threads REQUIRED)
find_path(HBMALLOC_ABSL_INCLUDE_DIRS absl/container/btree_map.h)
find_library(HBMALLOC_ABSL_RAW_HASH_SET NAMES libabsl_raw_hash_set.a)
if(NOT HBMALLOC_ABSL_INCLUDE_DIRS)
  message(FATAL_ERROR "Abseil headers not found: apt-get install libabsl-dev, or -DHBMALLOC_ABSL_INCLUDE_DIRS=dir")
endif()
if(NOT HBMALLOC_ABSL_RAW_HASH_SET)
  if(HBMALLOC_BUILD_TESTS OR HBMALLOC_BUILD_BENCHMARKS)
    message(FATAL_ERROR "Abseil static archives not found (tests need them): apt-get install libabsl-dev")
  endif()
  message(STATUS "hbmalloc: Abseil headers only (${HBMALLOC_ABSL_INCLUDE_DIRS})")
  set(HBMALLOC_ABSL_STATIC_LINK "")
  return()
endif()
get_filename_component(_absl_dir ${HBMALLOC_ABSL_RAW_HASH_SET} DIRECTORY)
file(GLOB _absl_archives ${_absl_dir}/libabsl_*.a)
set(HBMALLOC_ABSL_STATIC_LINK -Wl,--start-group ${_absl_archives} -Wl,--end-group)

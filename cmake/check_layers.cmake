# Fails the build when a file includes a layer it must not: data flows
# caller -> Allocator -> Policy -> Backend, the runtime never reaches the
# analyser, and within the analyser trace < replay < tune < report.
# Run as `cmake -DSOURCE_DIR=... -P check_layers.cmake` (a target of every build).

# What each layer may include (its own folder, and the public headers, always).
set(allowed_core core absl)
set(allowed_backend backend core absl)
set(allowed_policy policy backend core absl)
set(allowed_record record backend core absl)
set(allowed_allocator allocator core backend policy record absl)  # allocator/*.cc: the assembly
set(allowed_trace trace record core absl)
set(allowed_synth synth trace record core absl)
set(allowed_replay replay trace record policy backend core absl)
set(allowed_tune tune replay trace record policy backend core absl)
set(allowed_report report tune replay trace record policy backend core absl)

set(problems "")
foreach(root allocator analysis)
  file(GLOB_RECURSE sources "${SOURCE_DIR}/${root}/*.h" "${SOURCE_DIR}/${root}/*.cc")
  foreach(src ${sources})
    file(RELATIVE_PATH rel "${SOURCE_DIR}/${root}" "${src}")
    if(rel MATCHES "^([^/]+)/")
      set(layer "${CMAKE_MATCH_1}")
    else()
      set(layer allocator)
    endif()
    if(NOT DEFINED allowed_${layer})
      string(APPEND problems "  ${root}/${rel}: folder ${layer} has no entry in cmake/check_layers.cmake\n")
      continue()
    endif()
    file(STRINGS "${src}" includes REGEX "^#include \"[^\"]+\"")
    foreach(line ${includes})
      string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" header "${line}")
      if(NOT header MATCHES "/")
        continue()  # a file beside it (python/csrc style) or a standard header
      endif()
      string(REGEX REPLACE "/.*" "" target "${header}")
      if(target STREQUAL "hbmalloc")
        continue()  # the public API
      endif()
      list(FIND allowed_${layer} "${target}" at)
      if(at EQUAL -1)
        string(REPLACE ";" ", " may "${allowed_${layer}}")
        string(APPEND problems "  ${root}/${rel} includes ${header}: ${layer} may include only ${may}\n")
      endif()
    endforeach()
  endforeach()
endforeach()
if(problems)
  message(FATAL_ERROR "hbmalloc: an include against the layering:\n${problems}")
endif()

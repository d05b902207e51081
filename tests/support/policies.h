// The configurations a test runs under every policy: hbm (page-mapped), hbm
// remapping at every chance (free blocks partly unmapped), hbm with plain
// segments, cca, cca with expandable segments; with a readable name for each
// in the test's name.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace hbmalloc::testing {

inline auto EveryPolicy() {
  return ::testing::Values("", "remap:always", "vmm:off", "policy:cca", "policy:cca,expandable_segments:True");
}

inline std::string PolicyName(const ::testing::TestParamInfo<const char*>& info) {
  const std::string conf = info.param;
  if (conf.empty()) return "hbm";
  if (conf == "vmm:off") return "hbm_plain";
  if (conf == "remap:always") return "hbm_remap_always";
  return conf.find("expandable") != std::string::npos ? "cca_expandable" : "cca";
}

}  // namespace hbmalloc::testing

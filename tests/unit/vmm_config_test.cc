// Unit tests for include/hbmalloc/vmm_config.hpp (allocator/core/vmm_config.cc):
// the vmm, granule_size, remap, pressure_threshold, remap_budget, remap_window and remap_overhead keys of HBMALLOC_CONF.
#include "hbmalloc/vmm_config.hpp"

#include <gtest/gtest.h>

#include <string>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"

namespace hbmalloc {
namespace {

// The message of the Error(kConfig) parsing `text` throws ("" if none).
std::string ConfigError(const std::string& text) {
  try {
    Config::parse(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "'" << text << "' was accepted";
  return "";
}

TEST(VmmConfig, Defaults) {
  Config c = Config::parse("");
  EXPECT_TRUE(c.vmm.enabled);
  EXPECT_EQ(c.vmm.granule_size, 2u << 20);
  EXPECT_EQ(c.vmm.remap, VmmConfig::Remap::kPressure);
  EXPECT_EQ(c.vmm.pressure_threshold, 0.95);
  EXPECT_FALSE(c.vmm.remap_budget.has_value());
  EXPECT_EQ(c.vmm.budget(), 0.01) << "1% of elapsed time under the default remapping";
  for (const char* chosen : {"remap:always", "remap:pressure", "pressure_threshold:0.99", "pressure_threshold:0.95"})
    EXPECT_LT(Config::parse(chosen).vmm.budget(), 0.0) << chosen << ": no budget unless asked for";
  EXPECT_EQ(Config::parse("remap:always,remap_budget:0.02").vmm.budget(), 0.02);
  EXPECT_EQ(Config::parse("remap_budget:0.02,pressure_threshold:0.99").vmm.budget(), 0.02);
  EXPECT_EQ(c.vmm.remap_window_us, 60'000'000);
  // remap_overhead has the budget's scope.
  EXPECT_FALSE(c.vmm.remap_overhead.has_value());
  EXPECT_EQ(c.vmm.overhead(), 0.05) << "5% of creating time under the default remapping";
  for (const char* chosen : {"remap:always", "remap:pressure", "pressure_threshold:0.99"})
    EXPECT_LT(Config::parse(chosen).vmm.overhead(), 0.0) << chosen << ": nothing bought out unless asked for";
  EXPECT_EQ(Config::parse("remap_overhead:0.2,pressure_threshold:0.99").vmm.overhead(), 0.2);
}

TEST(VmmConfig, ParsesEveryKey) {
  Config c = Config::parse("vmm:off, granule_size:4MiB, remap:always, pressure_threshold:0.8");
  EXPECT_FALSE(c.vmm.enabled);
  EXPECT_EQ(c.vmm.granule_size, 4u << 20);
  EXPECT_EQ(c.vmm.remap, VmmConfig::Remap::kAlways);
  EXPECT_EQ(c.vmm.pressure_threshold, 0.8);
  EXPECT_EQ(Config::parse("remap:never").vmm.remap, VmmConfig::Remap::kNever);
  EXPECT_EQ(Config::parse("remap:pressure").vmm.remap, VmmConfig::Remap::kPressure);
  EXPECT_TRUE(Config::parse("vmm:on").vmm.enabled);
  EXPECT_EQ(Config::parse("pressure_threshold:1").vmm.pressure_threshold, 1.0);
  EXPECT_EQ(Config::parse("remap_budget:0.05").vmm.budget(), 0.05);
  EXPECT_EQ(Config::parse("remap_budget:0").vmm.budget(), 0.0);
  EXPECT_LT(Config::parse("remap_budget:off").vmm.budget(), 0.0);
  EXPECT_EQ(Config::parse("remap_window:10s").vmm.remap_window_us, 10'000'000);
  EXPECT_EQ(Config::parse("remap_window:250ms").vmm.remap_window_us, 250'000);
  EXPECT_EQ(Config::parse("remap_window:3600s").vmm.remap_window_us, int64_t(3600) * 1'000'000);
  EXPECT_EQ(Config::parse("remap_overhead:0").vmm.overhead(), 0.0);
  EXPECT_EQ(Config::parse("remap_overhead:100").vmm.overhead(), 100.0);
  EXPECT_LT(Config::parse("remap_overhead:off").vmm.overhead(), 0.0);
}

TEST(VmmConfig, BadValuesNameTheKey) {
  EXPECT_NE(ConfigError("vmm:yes").find("vmm: bad value 'yes'"), std::string::npos);
  EXPECT_NE(ConfigError("granule_size:3MiB").find("granule_size"), std::string::npos);
  EXPECT_NE(ConfigError("granule_size:2KiB").find("granule_size"), std::string::npos);
  EXPECT_NE(ConfigError("granule_size:2GiB").find("granule_size"), std::string::npos);
  EXPECT_NE(ConfigError("granule_size:lots").find("granule_size"), std::string::npos);
  EXPECT_NE(ConfigError("remap:sometimes").find("expected always, pressure or never"), std::string::npos);
  EXPECT_NE(ConfigError("pressure_threshold:0").find("pressure_threshold"), std::string::npos);
  EXPECT_NE(ConfigError("pressure_threshold:1.5").find("pressure_threshold"), std::string::npos);
  EXPECT_NE(ConfigError("pressure_threshold:nan").find("pressure_threshold"), std::string::npos);
  EXPECT_NE(ConfigError("remaps:always").find("known:"), std::string::npos);
  EXPECT_NE(ConfigError("remap_budget:2").find("remap_budget: bad value '2' (must be in [0, 1], or off)"), std::string::npos);
  EXPECT_NE(ConfigError("remap_budget:-0.1").find("remap_budget"), std::string::npos);
  EXPECT_NE(ConfigError("remap_budget:some").find("expected a share of time such as 0.01, or off"), std::string::npos);
  EXPECT_NE(ConfigError("remap_window:0").find("remap_window: bad value '0' (must be more than 0 and at most an hour)"),
            std::string::npos);
  EXPECT_NE(ConfigError("remap_window:3601s").find("at most an hour"), std::string::npos);
  EXPECT_NE(ConfigError("remap_window:5").find("remap_window: bad value '5' (expected a duration such as 500ms"),
            std::string::npos);
  EXPECT_NE(ConfigError("remap_window:-1s").find("remap_window"), std::string::npos);
  EXPECT_NE(ConfigError("remap_overhead:101").find("remap_overhead: bad value '101' (must be in [0, 100], or off)"),
            std::string::npos);
  EXPECT_NE(ConfigError("remap_overhead:-1").find("remap_overhead"), std::string::npos);
  EXPECT_NE(ConfigError("remap_overhead:inf").find("expected a share of creating time such as 0.05, or off"),
            std::string::npos);
}

TEST(VmmConfig, RoundTripsThroughToString) {
  Config c = Config::parse(
      "vmm:off,granule_size:8MiB,remap:never,pressure_threshold:0.123456789,remap_budget:off,remap_window:1500ms,"
      "remap_overhead:0.25");
  Config back = Config::parse(c.to_string());
  EXPECT_EQ(back.vmm.budget(), c.vmm.budget());
  EXPECT_EQ(back.vmm.remap_window_us, c.vmm.remap_window_us);
  EXPECT_EQ(back.vmm.overhead(), 0.25);
  EXPECT_EQ(back.vmm.enabled, c.vmm.enabled);
  EXPECT_EQ(back.vmm.granule_size, c.vmm.granule_size);
  EXPECT_EQ(back.vmm.remap, c.vmm.remap);
  EXPECT_EQ(back.vmm.pressure_threshold, c.vmm.pressure_threshold);
  EXPECT_NE(c.to_string().find("vmm:off,granule_size:8388608,remap:never,pressure_threshold:0.123456789,remap_budget:off,"
                                "remap_window:1500ms,remap_overhead:0.25"),
            std::string::npos)
      << c.to_string();
  // The default budget reads back as the budget in force.
  for (const char* text : {"", "remap:always", "pressure_threshold:0.9", "remap_window:7us"}) {
    const Config d = Config::parse(text);
    const Config again = Config::parse(d.to_string());
    EXPECT_EQ(again.vmm.budget(), d.vmm.budget()) << text;
    EXPECT_EQ(again.vmm.remap_window_us, d.vmm.remap_window_us) << text;
    EXPECT_EQ(again.vmm.overhead(), d.vmm.overhead()) << text;
  }
}

}  // namespace
}  // namespace hbmalloc

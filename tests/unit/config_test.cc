// Unit tests for include/hbmalloc/config.hpp (allocator/core/config.cc):
// HBMALLOC_CONF parsing, byte sizes and the round trip through to_string().
#include "hbmalloc/config.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "hbmalloc/error.hpp"

namespace hbmalloc {
namespace {

constexpr uint64_t kKiB = uint64_t(1) << 10;
constexpr uint64_t kMiB = uint64_t(1) << 20;
constexpr uint64_t kGiB = uint64_t(1) << 30;

void ExpectSameConfig(const Config& a, const Config& b) {
  EXPECT_EQ(a.policy, b.policy);
  EXPECT_EQ(a.backend, b.backend);
  EXPECT_EQ(a.capacity, b.capacity);
  EXPECT_EQ(a.memory_fraction, b.memory_fraction);  // exact: %.17g round-trips
  EXPECT_EQ(a.small_size, b.small_size);
  EXPECT_EQ(a.slab_size, b.slab_size);
  EXPECT_EQ(a.segment_round, b.segment_round);
  EXPECT_EQ(a.sim_devices, b.sim_devices);
  EXPECT_EQ(a.sim_lag_us, b.sim_lag_us);
}

// Parses `text`, expects Error(kConfig), returns its message ("" if none).
std::string ParseError(const std::string& text) {
  try {
    Config::parse(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig) << "parsing '" << text << "': " << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "parsing '" << text << "' threw a non-hbmalloc exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "parsing '" << text << "' did not throw";
  return "";
}

// ---- parse_bytes / format_bytes ---------------------------------------------

TEST(ConfigParseBytesTest, GoodSizes) {
  EXPECT_EQ(parse_bytes("4096"), 4096u);
  EXPECT_EQ(parse_bytes("0"), 0u);
  EXPECT_EQ(parse_bytes("512MiB"), 512 * kMiB);
  EXPECT_EQ(parse_bytes("80GiB"), 80 * kGiB);
  EXPECT_EQ(parse_bytes("1.5GiB"), 3 * kGiB / 2);
  EXPECT_EQ(parse_bytes("2GB"), 2000000000u);
  EXPECT_EQ(parse_bytes(" 7 KiB "), 7 * kKiB);
  EXPECT_EQ(parse_bytes("1M"), kMiB);
  EXPECT_EQ(parse_bytes("1K"), kKiB);
  EXPECT_EQ(parse_bytes("3G"), 3 * kGiB);
  EXPECT_EQ(parse_bytes("2T"), 2 * 1024 * kGiB);
  EXPECT_EQ(parse_bytes("2TiB"), 2 * 1024 * kGiB);
  EXPECT_EQ(parse_bytes("3TB"), 3000000000000u);
  // format_bytes writes PiB (an unlimited device is 1 PiB), so it must read back.
  EXPECT_EQ(parse_bytes("1PiB"), uint64_t(1) << 50);
  EXPECT_EQ(parse_bytes("1P"), uint64_t(1) << 50);
  EXPECT_EQ(parse_bytes("2PB"), 2000000000000000u);
  EXPECT_EQ(parse_bytes(format_bytes(uint64_t(1) << 50)), uint64_t(1) << 50);
  EXPECT_EQ(parse_bytes("5KB"), 5000u);
  EXPECT_EQ(parse_bytes("7MB"), 7000000u);
  EXPECT_EQ(parse_bytes("123B"), 123u);
  EXPECT_EQ(parse_bytes("0.5KiB"), 512u);
  EXPECT_EQ(parse_bytes("\t64\tKiB\t"), 64 * kKiB);
}

TEST(ConfigParseBytesTest, BadSizesThrowConfigError) {
  for (const char* bad : {"", "abc", "12XB", "-5", "0.3", "KiB", "5 5", ".", "1.2.3", "1e3", "12 kib",
                          "18446744073709551616", "20000000TiB", "16384PiB"}) {
    try {
      uint64_t v = parse_bytes(bad);
      ADD_FAILURE() << "parse_bytes('" << bad << "') returned " << v;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfig) << "'" << bad << "'";
    }
  }
}

TEST(ConfigParseBytesTest, FormatBytes) {
  EXPECT_EQ(format_bytes(3221225472u), "3.00 GiB");
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.00 KiB");
  EXPECT_EQ(format_bytes(3 * kMiB / 2), "1.50 MiB");
}

// ---- Config::parse: good values ---------------------------------------------

TEST(ConfigParseTest, EmptyTextGivesDefaults) {
  Config c = Config::parse("");
  EXPECT_EQ(c.policy, "hbm");
  EXPECT_EQ(c.backend, Config::kDefaultBackend);
  EXPECT_EQ(c.capacity, 0u);
  EXPECT_EQ(c.memory_fraction, 1.0);
  EXPECT_EQ(c.small_size, 64 * kKiB);
  EXPECT_EQ(c.slab_size, 128 * kKiB);
  EXPECT_EQ(c.mid_size, kMiB);
  EXPECT_EQ(c.segment_round, 2 * kMiB);
  EXPECT_EQ(c.sim_devices, 8);
  ExpectSameConfig(Config::parse("   "), Config{});
  ExpectSameConfig(Config::parse(",,"), Config{});
}

TEST(ConfigParseTest, EveryKeyGoodValues) {
  EXPECT_EQ(Config::parse("policy:hbm").policy, "hbm");
  EXPECT_EQ(Config::parse("backend:sim").backend, "sim");
  EXPECT_EQ(Config::parse("backend:cuda").backend, "cuda");
  EXPECT_EQ(Config::parse("capacity:80GiB").capacity, 80 * kGiB);
  EXPECT_EQ(Config::parse("capacity:0").capacity, 0u);
  EXPECT_EQ(Config::parse("capacity:4096").capacity, 4096u);
  EXPECT_EQ(Config::parse("memory_fraction:0.5").memory_fraction, 0.5);
  EXPECT_EQ(Config::parse("memory_fraction:1").memory_fraction, 1.0);
  EXPECT_EQ(Config::parse("memory_fraction:0.001").memory_fraction, 0.001);
  EXPECT_EQ(Config::parse("small_size:512").small_size, 512u);
  EXPECT_EQ(Config::parse("small_size:256KiB,slab_size:512KiB").small_size, 256 * kKiB);
  EXPECT_EQ(Config::parse("small_size:1MiB,slab_size:2MiB").small_size, kMiB);
  {
    Config c = Config::parse("slab_size:1MiB,small_size:512KiB");
    EXPECT_EQ(c.slab_size, kMiB);
    EXPECT_EQ(c.small_size, 512 * kKiB);
  }
  {
    Config c = Config::parse("small_size:32KiB,slab_size:64KiB");
    EXPECT_EQ(c.slab_size, 64 * kKiB);
    EXPECT_EQ(c.small_size, 32 * kKiB);
  }
  EXPECT_EQ(Config::parse("slab_size:2MiB").slab_size, 2 * kMiB);
  EXPECT_EQ(Config::parse("mid_size:0").mid_size, 0u);
  EXPECT_EQ(Config::parse("mid_size:4MiB").mid_size, 4 * kMiB);
  EXPECT_EQ(Config::parse("mid_size:1024TiB").mid_size, uint64_t(1) << 50);
  EXPECT_EQ(Config::parse("segment_round:512").segment_round, 512u);
  EXPECT_EQ(Config::parse("segment_round:1GiB").segment_round, kGiB);
  EXPECT_EQ(Config::parse("sim_devices:1").sim_devices, 1);
  EXPECT_EQ(Config::parse("sim_devices:1024").sim_devices, 1024);
  EXPECT_EQ(Config::parse("sim_devices:3").sim_devices, 3);
  EXPECT_EQ(Config::parse("sim_lag:0").sim_lag_us, 0);
  EXPECT_EQ(Config::parse("sim_lag:250us").sim_lag_us, 250);
  EXPECT_EQ(Config::parse("sim_lag:2ms").sim_lag_us, 2000);
  EXPECT_EQ(Config::parse("sim_lag:1.5s").sim_lag_us, 1'500'000);
}

TEST(ConfigParseTest, AllKeysTogetherWithWhitespace) {
  Config c = Config::parse(
      " policy : hbm ,\tbackend:sim , capacity: 16GiB, memory_fraction :0.75,small_size:128KiB ,"
      "slab_size:512KiB,segment_round:4MiB,sim_devices:2 ");
  EXPECT_EQ(c.policy, "hbm");
  EXPECT_EQ(c.backend, "sim");
  EXPECT_EQ(c.capacity, 16 * kGiB);
  EXPECT_EQ(c.memory_fraction, 0.75);
  EXPECT_EQ(c.small_size, 128 * kKiB);
  EXPECT_EQ(c.slab_size, 512 * kKiB);
  EXPECT_EQ(c.segment_round, 4 * kMiB);
  EXPECT_EQ(c.sim_devices, 2);
}

TEST(ConfigParseTest, LaterKeyWins) {
  EXPECT_EQ(Config::parse("capacity:1GiB,capacity:2GiB").capacity, 2 * kGiB);
}

TEST(ConfigParseTest, EmptyItemsTolerated) {
  Config c = Config::parse("policy:hbm,,backend:sim,");
  EXPECT_EQ(c.policy, "hbm");
  EXPECT_EQ(c.backend, "sim");
  EXPECT_EQ(Config::parse(",capacity:1GiB, ,").capacity, kGiB);
}

// ---- Config::parse: bad values ----------------------------------------------

struct BadValue {
  const char* key;
  const char* value;
};

TEST(ConfigParseTest, BadValueErrorsNameKeyAndValue) {
  const std::vector<BadValue> cases = {
      {"policy", "tlsf"},          {"policy", "HBM"},
      {"backend", "rocm"},         {"backend", "Sim"},
      {"capacity", "lots"},        {"capacity", "-1GiB"},
      {"capacity", "12XB"},        {"capacity", "0.3"},
      {"memory_fraction", "0"},    {"memory_fraction", "1.5"},
      {"memory_fraction", "-0.5"}, {"memory_fraction", "half"},
      {"memory_fraction", "nan"},  {"memory_fraction", "inf"},
      {"memory_fraction", "0.5x"}, {"small_size", "100"},
      {"small_size", "511"},       {"small_size", "big"},
      {"slab_size", "3MiB"},       {"slab_size", "4MiB"},
      {"slab_size", "96KiB"},      {"slab_size", "32KiB"},
      {"slab_size", "junk"},       {"segment_round", "256"},
      {"mid_size", "big"},         {"mid_size", "1025TiB"},
      {"mid_size", "-1"},
      {"segment_round", "3000"},   {"segment_round", "0"},
      {"segment_round", "x"},      {"sim_devices", "0"},
      {"sim_devices", "1.5"},      {"sim_devices", "2000"},
      {"sim_devices", "-3"},       {"sim_devices", "many"},
      {"sim_lag", "5"},            {"sim_lag", "-1ms"},
      {"sim_lag", "2 ms"},         {"sim_lag", "1h"},
      {"sim_lag", "ms"},           {"sim_lag", "2hours"},
      {"sim_lag", "3601s"},
  };
  for (const BadValue& bad : cases) {
    std::string text = std::string(bad.key) + ":" + bad.value;
    std::string msg = ParseError(text);
    EXPECT_NE(msg.find(bad.key), std::string::npos) << "'" << text << "' -> " << msg;
    EXPECT_NE(msg.find(std::string("'") + bad.value + "'"), std::string::npos) << "'" << text << "' -> " << msg;
    // Also as part of a longer, otherwise valid string.
    std::string longer = "policy:hbm," + text + ",backend:sim";
    std::string msg2 = ParseError(longer);
    EXPECT_NE(msg2.find(bad.key), std::string::npos) << "'" << longer << "' -> " << msg2;
    EXPECT_NE(msg2.find(bad.value), std::string::npos) << "'" << longer << "' -> " << msg2;
  }
}

TEST(ConfigParseTest, EmptyValueIsAnError) {
  for (const char* key : {"policy", "backend", "capacity", "memory_fraction", "small_size", "slab_size",
                          "segment_round", "sim_devices", "mid_size"}) {
    std::string msg = ParseError(std::string(key) + ":");
    EXPECT_NE(msg.find(key), std::string::npos) << msg;
    msg = ParseError(std::string(key) + ":  ,policy:hbm");
    EXPECT_NE(msg.find(key), std::string::npos) << msg;
  }
}

TEST(ConfigParseTest, UnknownKeyIsNamed) {
  std::string msg = ParseError("frobnicate:1");
  EXPECT_NE(msg.find("frobnicate"), std::string::npos) << msg;
  msg = ParseError("policy:hbm, Capacity:1GiB");  // keys are case-sensitive
  EXPECT_NE(msg.find("Capacity"), std::string::npos) << msg;
}

TEST(ConfigParseTest, ItemWithoutColonIsAnError) {
  std::string msg = ParseError("novalue");
  EXPECT_NE(msg.find("novalue"), std::string::npos) << msg;
  msg = ParseError("policy:hbm,novalue");
  EXPECT_NE(msg.find("novalue"), std::string::npos) << msg;
}

TEST(ConfigParseTest, SmallSizeMustBeAtMostHalfTheSlab) {
  std::string msg = ParseError("small_size:2MiB");  // default slab 2 MiB
  EXPECT_NE(msg.find("small_size"), std::string::npos) << msg;
  msg = ParseError("slab_size:1MiB,small_size:1MiB");
  EXPECT_NE(msg.find("small_size"), std::string::npos) << msg;
  // Shrinking the slab alone conflicts with the default 1 MiB small_size, and
  // the check runs after all keys, whatever their order.
  msg = ParseError("slab_size:64KiB");
  EXPECT_NE(msg.find("small_size"), std::string::npos) << msg;
  msg = ParseError("small_size:32KiB+1,slab_size:64KiB");  // not even a size
  EXPECT_NE(msg.find("small_size"), std::string::npos) << msg;
  msg = ParseError("small_size:33KiB,slab_size:64KiB");
  EXPECT_NE(msg.find("small_size"), std::string::npos) << msg;
  // Exactly half is fine.
  EXPECT_NO_THROW(Config::parse("small_size:1MiB,slab_size:2MiB"));
  EXPECT_NO_THROW(Config::parse("slab_size:64KiB,small_size:32KiB"));
}

// ---- to_string / from_env -----------------------------------------------------

TEST(ConfigToStringTest, RoundTripsThroughParse) {
  std::vector<Config> configs;
  configs.push_back(Config{});
  {
    Config c;
    c.backend = "sim";
    c.capacity = 80 * kGiB;
    c.memory_fraction = 0.3;  // not exact in binary: read back from its shortest text
    c.small_size = 64 * kKiB;
    c.slab_size = 128 * kKiB;
    c.segment_round = 512;
    c.sim_devices = 1024;
    c.sim_lag_us = 1500;
    configs.push_back(c);
  }
  {
    Config c;
    c.backend = "cuda";
    c.capacity = 12345;
    c.memory_fraction = 1.0 / 3.0;
    c.small_size = 513;
    c.slab_size = 64 * kKiB;
    c.segment_round = 1ull << 40;
    c.sim_devices = 1;
    configs.push_back(c);
  }
  {
    Config c;
    c.capacity = uint64_t(1) << 50;
    c.memory_fraction = 0.1 + 0.2;
    configs.push_back(c);
  }
  for (const Config& c : configs) {
    std::string text = c.to_string();
    SCOPED_TRACE(text);
    Config back = Config::parse(text);
    ExpectSameConfig(back, c);
    EXPECT_EQ(back.to_string(), text);
  }
}

// Whole byte counts are parsed exactly (not through a double), so any
// capacity round-trips through to_string() to the byte.
TEST(ConfigToStringTest, RoundTripsHugeByteCounts) {
  EXPECT_EQ(parse_bytes("9007199254740993"), (uint64_t(1) << 53) + 1);
  EXPECT_THROW(parse_bytes("18446744073709551616"), Error);  // UINT64_MAX + 1
  EXPECT_THROW(parse_bytes("16777216TiB"), Error);            // 2^64 bytes
  EXPECT_THROW(parse_bytes("10000000.4"), Error);             // not whole bytes
  EXPECT_EQ(parse_bytes("0.5KiB"), 512u);
  for (uint64_t capacity : {(uint64_t(1) << 49) + 1, kMaxDeviceBytes - 1, kMaxDeviceBytes}) {
    Config c;
    c.capacity = capacity;
    std::string text = c.to_string();
    try {
      EXPECT_EQ(Config::parse(text).capacity, capacity) << text;
    } catch (const Error& e) {
      ADD_FAILURE() << "parse(to_string()) threw for capacity " << capacity << ": " << e.what();
    }
  }
  // Past the largest device hbmalloc models a capacity is refused, naming the key, never wrapped.
  for (const char* text : {"capacity:1125899906842625", "capacity:18446744073709551615", "capacity:1025TiB"}) {
    try {
      Config::parse(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("capacity"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("1 PiB"), std::string::npos) << e.what();
    }
  }
}

// Fractions print as their shortest exact text, as a person would write them.
TEST(ConfigToStringTest, FractionsPrintShortestAndExact) {
  Config c;
  c.memory_fraction = 0.3;
  c.vmm.pressure_threshold = 0.95;
  const std::string text = c.to_string();
  EXPECT_NE(text.find(",memory_fraction:0.3,"), std::string::npos) << text;
  EXPECT_NE(text.find(",pressure_threshold:0.95"), std::string::npos) << text;
  EXPECT_EQ(format_number(0.1 + 0.2), "0.30000000000000004");  // not 0.3: that would read back as another double
  EXPECT_EQ(format_number(1), "1");
}

TEST(ConfigToStringTest, MentionsEveryKey) {
  std::string text = Config{}.to_string();
  for (const char* key : {"policy:", "backend:", "capacity:", "memory_fraction:", "small_size:", "slab_size:",
                          "segment_round:", "sim_devices:"})
    EXPECT_NE(text.find(key), std::string::npos) << key << " missing from " << text;
}

class ConfigEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* old = std::getenv("HBMALLOC_CONF");
    had_old_ = old != nullptr;
    if (had_old_) old_ = old;
  }
  void TearDown() override {
    if (had_old_) setenv("HBMALLOC_CONF", old_.c_str(), 1);
    else unsetenv("HBMALLOC_CONF");
  }
  bool had_old_ = false;
  std::string old_;
};

TEST_F(ConfigEnvTest, ReadsHbmallocConf) {
  ASSERT_EQ(setenv("HBMALLOC_CONF", "backend:sim,capacity:3GiB,sim_devices:2", 1), 0);
  Config c = Config::from_env();
  EXPECT_EQ(c.backend, "sim");
  EXPECT_EQ(c.capacity, 3 * kGiB);
  EXPECT_EQ(c.sim_devices, 2);
  EXPECT_EQ(c.policy, "hbm");
  EXPECT_EQ(c.small_size, 64 * kKiB);
}

TEST_F(ConfigEnvTest, UnsetGivesDefaults) {
  ASSERT_EQ(unsetenv("HBMALLOC_CONF"), 0);
  ExpectSameConfig(Config::from_env(), Config{});
  ASSERT_EQ(setenv("HBMALLOC_CONF", "", 1), 0);
  ExpectSameConfig(Config::from_env(), Config{});
}

TEST_F(ConfigEnvTest, BadEnvThrows) {
  ASSERT_EQ(setenv("HBMALLOC_CONF", "capacity:lots", 1), 0);
  try {
    Config::from_env();
    ADD_FAILURE() << "from_env did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig);
    EXPECT_NE(std::string(e.what()).find("capacity"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hbmalloc

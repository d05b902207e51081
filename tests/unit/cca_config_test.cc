// Unit tests for policy/cca/cca_config.h and cca_rules.h: PyTorch's keys
// with PyTorch's validation, both roundup_power2_divisions syntaxes, the
// settings a snapshot describes, and the size rules (rounding, segment
// sizes, splitting).
#include "policy/cca/cca_config.h"

#include <gtest/gtest.h>

#include <string>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "policy/cca/cca_rules.h"

namespace hbmalloc::cca {
namespace {

CcaConfig Parse(const std::string& text) { return parse_settings(split_settings(text)); }

// The message of the Error(kConfig) that parsing `text` throws ("" if none).
std::string ErrorOf(const std::string& text) {
  try {
    Parse(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "'" << text << "' parsed";
  return "";
}

TEST(CcaConfig, DefaultsArePyTorchs) {
  CcaConfig c = Parse("");
  EXPECT_EQ(c.large_segment_size, 20 * kMiB);
  EXPECT_FALSE(c.max_split_size_set());
  EXPECT_EQ(c.max_non_split_rounding_size, 20 * kMiB);
  EXPECT_EQ(c.garbage_collection_threshold, 0.0);
  EXPECT_FALSE(c.expandable_segments);
  EXPECT_EQ(c.per_process_memory_fraction, 1.0);
  for (uint64_t d : c.roundup_power2_divisions) EXPECT_EQ(d, 0u);
}

TEST(CcaConfig, KeysAsPyTorchSpellsThem) {
  CcaConfig c = Parse(
      "max_split_size_mb:200, garbage_collection_threshold:0.6,expandable_segments:True,"
      "per_process_memory_fraction:0.5,max_non_split_rounding_mb:64,backend:native,"
      "release_lock_on_cudamalloc:True,pinned_use_cuda_host_register:False,pinned_num_register_threads:8,"
      "pinned_use_background_threads:True,graph_capture_record_stream_reuse:False,pinned_reserve_segment_size_mb:4");
  EXPECT_EQ(c.max_split_size, 200 * kMiB);
  EXPECT_EQ(c.max_non_split_rounding_size, 64 * kMiB);
  EXPECT_DOUBLE_EQ(c.garbage_collection_threshold, 0.6);
  EXPECT_TRUE(c.expandable_segments);
  EXPECT_DOUBLE_EQ(c.per_process_memory_fraction, 0.5);
}

TEST(CcaConfig, LargeSegmentSizeIsReadFirstAndRaisesTheMinimums) {
  CcaConfig c = Parse("max_split_size_mb:40,large_segment_size_mb:40");
  EXPECT_EQ(c.large_segment_size, 40 * kMiB);
  EXPECT_EQ(c.max_split_size, 40 * kMiB);
  EXPECT_EQ(c.max_non_split_rounding_size, 40 * kMiB);  // defaults to the large segment size
  EXPECT_NE(ErrorOf("max_split_size_mb:30,large_segment_size_mb:40").find("must be >= 40"), std::string::npos);
  EXPECT_NE(ErrorOf("large_segment_size_mb:10").find("large_segment_size_mb must be > 10 MB"), std::string::npos);
}

TEST(CcaConfig, PyTorchsValidationMessages) {
  struct Case {
    const char* text;
    const char* says;
  } cases[] = {
      {"max_split_size_mb:19", "CachingAllocator option max_split_size_mb too small, must be >= 20"},
      {"max_non_split_rounding_mb:2", "CachingAllocator option max_non_split_rounding_mb too small, must be >= 20"},
      {"garbage_collection_threshold:1.0", "garbage_collect_threshold is invalid, set it in (0.0, 1.0)"},
      {"garbage_collection_threshold:0", "garbage_collect_threshold is invalid"},
      {"per_process_memory_fraction:1.5", "per_process_memory_fraction is invalid, set it in [0.0, 1.0]"},
      {"roundup_power2_divisions:3", "For roundups, the divisions has to be power of 2"},
      {"roundup_power2_divisions:0", "For roundups, the divisions has to be power of 2"},
      {"roundup_power2_divisions:[256:3]", "has to be power of 2 or 0 to disable roundup"},
      {"roundup_power2_divisions:[300:4]", "For roundups, the intervals have to be power of 2"},
      {"roundup_power2_divisions:[256:4", "Expected closing bracket"},
      {"expandable_segments:true", "Expected a single True/False argument for expandable_segments"},
      {"backend:magic", "Unknown allocator backend, options are native and cudaMallocAsync"},
      {"backend:cudaMallocAsync", "reproduces the native allocator"},
      {"pinned_num_register_threads:3", "Number of register threads has to be power of 2, got 3"},
      {"pinned_num_register_threads:256", "should be less than or equal to 128, got 256"},
      {"pinned_reserve_segment_size_mb:0", "Pinned reserve segment size has to be greater than 0"},
      {"max_split_size_mb:abc", "expected a whole number"},
      {"max_split_size_mb:-5", "expected a whole number"},
      {"garbage_collection_threshold:x", "expected a number"},
      {"no_such_key:1", "Unrecognized key 'no_such_key'"},
  };
  for (const Case& c : cases) {
    const std::string e = ErrorOf(c.text);
    EXPECT_NE(e.find(c.says), std::string::npos) << c.text << " -> " << e;
    const std::string key = std::string(c.text).substr(0, std::string(c.text).find(':'));
    EXPECT_NE(e.find(key), std::string::npos) << "the error names the key: " << e;
  }
}

TEST(CcaConfig, RoundupDivisionsSingleValueAppliesEverywhere) {
  CcaConfig c = Parse("roundup_power2_divisions:4");
  EXPECT_EQ(c.divisions_for(1000), 4u);
  EXPECT_EQ(c.divisions_for(100ull << 30), 4u);
}

TEST(CcaConfig, RoundupDivisionsListPerInterval) {
  // Before the first interval its value; ">" from after the last one on.
  CcaConfig c = Parse("roundup_power2_divisions:[64:8, 256:2,1024:4,>:1]");
  EXPECT_EQ(c.divisions_for(512), 8u);         // below 1 MiB: the first entry
  EXPECT_EQ(c.divisions_for(3 * kMiB), 8u);    // [2, 4) MiB
  EXPECT_EQ(c.divisions_for(64 * kMiB), 8u);   // [64, 128)
  EXPECT_EQ(c.divisions_for(128 * kMiB), 0u);  // [128, 256): not named
  EXPECT_EQ(c.divisions_for(300 * kMiB), 2u);  // [256, 512)
  EXPECT_EQ(c.divisions_for(1024 * kMiB), 4u);
  EXPECT_EQ(c.divisions_for(2048 * kMiB), 1u);
  EXPECT_EQ(c.divisions_for(1ull << 45), 1u);  // past 64 GiB: the last entry
}

TEST(CcaConfig, ConfigCarriesPyTorchKeysAndRoundTrips) {
  Config c = Config::parse("policy:cca,roundup_power2_divisions:[256:1,512:2,>:8],max_split_size_mb:128,capacity:8GiB");
  EXPECT_EQ(c.policy, "cca");
  ASSERT_EQ(c.pytorch_settings.size(), 2u);
  EXPECT_EQ(c.pytorch_settings[0].second, "[256:1,512:2,>:8]");
  Config again = Config::parse(c.to_string());
  EXPECT_EQ(again.pytorch_settings, c.pytorch_settings);
  EXPECT_EQ(again.capacity, c.capacity);
  EXPECT_EQ(alloc_conf_text(c.pytorch_settings), "roundup_power2_divisions:[256:1,512:2,>:8],max_split_size_mb:128");
  // A later value of a key wins, keeping its place.
  EXPECT_EQ(Config::parse("max_split_size_mb:40,max_split_size_mb:60").pytorch_settings.front().second, "60");
}

TEST(CcaConfig, ConfigRefusesBadPyTorchValuesByName) {
  try {
    Config::parse("policy:cca,max_split_size_mb:5");
    ADD_FAILURE() << "parsed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig);
    EXPECT_NE(std::string(e.what()).find("max_split_size_mb"), std::string::npos) << e.what();
  }
}

TEST(CcaConfig, SettingsOfAPyTorchSnapshot) {
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"PYTORCH_CUDA_ALLOC_CONF", ""},
      {"max_split_size", "-1"},
      {"garbage_collection_threshold", "0.0"},
      {"expandable_segments", "False"},
      {"release_lock_on_cudamalloc", "False"},
      {"roundup_power2_divisions", R"({"1":0,"2":0,"4":0,"8":0,"16":0,"32":0,"64":0,"128":0,"256":0,"512":0,"1024":0,"2048":0,"4096":0,"8192":0,"16384":0,"32768":0})"}};
  EXPECT_TRUE(settings_of_trace(defaults).empty());

  const std::vector<std::pair<std::string, std::string>> tuned = {
      {"PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True,large_segment_size_mb:40"},
      {"max_split_size", "268435456"},
      {"garbage_collection_threshold", "0.8"},
      {"expandable_segments", "True"},
      {"roundup_power2_divisions", R"({"1":4,"2":4,"4":4,"8":4,"16":4,"32":4,"64":4,"128":4,"256":4,"512":4,"1024":4,"2048":8,"4096":8,"8192":8,"16384":8,"32768":8})"}};
  Settings s = settings_of_trace(tuned);
  CcaConfig c = parse_settings(s);
  EXPECT_EQ(c.large_segment_size, 40 * kMiB);  // from the environment text
  EXPECT_EQ(c.max_split_size, 256 * kMiB);
  EXPECT_DOUBLE_EQ(c.garbage_collection_threshold, 0.8);
  EXPECT_TRUE(c.expandable_segments);
  EXPECT_EQ(c.divisions_for(kMiB), 4u);
  EXPECT_EQ(c.divisions_for(4096 * kMiB), 8u);

  // Newer PyTorch names its variable PYTORCH_ALLOC_CONF; its text is read the same way.
  Settings renamed = settings_of_trace({{"PYTORCH_ALLOC_CONF", "large_segment_size_mb:40"},
                                        {"expandable_segments", "True"}});
  EXPECT_EQ(parse_settings(renamed).large_segment_size, 40 * kMiB);
  EXPECT_TRUE(parse_settings(renamed).expandable_segments);

  // hbmalloc's own recordings name PyTorch's keys directly.
  Settings own = settings_of_trace({{"policy", "cca"}, {"max_split_size_mb", "64"}, {"expandable_segments", "True"}});
  EXPECT_EQ(parse_settings(own).max_split_size, 64 * kMiB);
  EXPECT_TRUE(parse_settings(own).expandable_segments);
}

// ---- size rules ----------------------------------------------------------------

TEST(CcaRules, RoundSize) {
  CcaConfig c;
  EXPECT_EQ(round_size(0, c), 512u);
  EXPECT_EQ(round_size(1, c), 512u);
  EXPECT_EQ(round_size(512, c), 512u);
  EXPECT_EQ(round_size(513, c), 1024u);
  EXPECT_EQ(round_size(3 * kMiB + 1, c), 3 * kMiB + 512);
  c = Parse("roundup_power2_divisions:4");
  EXPECT_EQ(round_size(1200, c), 1536u);               // divisions apply only above 512 * 4
  EXPECT_EQ(round_size(2049, c), 2560u);               // 2048, 2560, 3072, 3584
  EXPECT_EQ(round_size(3000, c), 3072u);
  EXPECT_EQ(round_size(5 * kMiB, c), 5 * kMiB);        // on a step already
  EXPECT_EQ(round_size(5 * kMiB + 1, c), 6 * kMiB);    // steps of 1 MiB between 4 and 8 MiB
  EXPECT_EQ(round_size(64 * kMiB, c), 64 * kMiB);      // a power of two stays
  c = Parse("roundup_power2_divisions:[1:1,>:16]");
  EXPECT_EQ(round_size(kMiB + 1, c), kMiB + 512);      // 1 division: plain 512 rounding
  EXPECT_EQ(round_size(2 * kMiB + 1, c), 2 * kMiB + 128 * 1024);
}

TEST(CcaRules, NextDivision) {
  EXPECT_EQ(roundup_power2_next_division(1200, 4), 1280u);
  EXPECT_EQ(roundup_power2_next_division(1024, 4), 1024u);
  EXPECT_EQ(roundup_power2_next_division(1025, 2), 1536u);
  EXPECT_EQ(roundup_power2_next_division(3, 8), 4u);  // a step of 0: the next power of two
}

TEST(CcaRules, SegmentSizes) {
  CcaConfig c;
  EXPECT_EQ(allocation_size(512, c), 2 * kMiB);
  EXPECT_EQ(allocation_size(kMiB, c), 2 * kMiB);
  EXPECT_EQ(allocation_size(kMiB + 512, c), 20 * kMiB);
  EXPECT_EQ(allocation_size(10 * kMiB - 512, c), 20 * kMiB);
  EXPECT_EQ(allocation_size(10 * kMiB, c), 10 * kMiB);
  EXPECT_EQ(allocation_size(11 * kMiB + 512, c), 12 * kMiB);
  c = Parse("large_segment_size_mb:64");
  EXPECT_EQ(allocation_size(3 * kMiB, c), 64 * kMiB);
}

TEST(CcaRules, ShouldSplit) {
  CcaConfig c;
  EXPECT_TRUE(should_split(2 * kMiB, 2 * kMiB - 512, true, false, c));   // small: 512 left is enough
  EXPECT_FALSE(should_split(2 * kMiB, 2 * kMiB, true, false, c));
  EXPECT_FALSE(should_split(20 * kMiB, 19 * kMiB, false, false, c));     // large: exactly 1 MiB left is not
  EXPECT_TRUE(should_split(20 * kMiB, 19 * kMiB - 512, false, false, c));
  EXPECT_TRUE(should_split(20 * kMiB, 19 * kMiB, false, true, c));       // expandable: 512 is enough
  c = Parse("max_split_size_mb:100");
  EXPECT_FALSE(should_split(400 * kMiB, 100 * kMiB, false, false, c));   // an oversize request never splits
  EXPECT_TRUE(should_split(400 * kMiB, 99 * kMiB, false, false, c));
}

}  // namespace
}  // namespace hbmalloc::cca

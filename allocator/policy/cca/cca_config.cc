#include "policy/cca/cca_config.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "hbmalloc/error.hpp"

namespace hbmalloc::cca {
namespace {

constexpr uint64_t kMinLargeAllocMb = 10;  // requests below 10 MiB may share a large segment
constexpr uint64_t kMaxMb = std::numeric_limits<uint64_t>::max() / kMiB;
constexpr uint64_t kMaxRegisterThreads = 128;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// PyTorch's tokenizer drops every blank, inside lists too.
std::string without_blanks(std::string_view s) {
  std::string out;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  return out;
}

[[noreturn]] void bad(std::string_view key, std::string_view value, const std::string& why) {
  throw Error(ErrorCode::kConfig, std::string(key) + ": bad value '" + std::string(value) + "' (" + why + ")");
}

uint64_t whole(std::string_view key, std::string_view value, std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) bad(key, value, "expected a whole number");
  return n;
}

double number(std::string_view key, std::string_view value) {
  double d = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), d);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || !std::isfinite(d))
    bad(key, value, "expected a number");
  return d;
}

bool boolean(std::string_view key, std::string_view value) {
  if (value == "True") return true;
  if (value == "False") return false;
  bad(key, value, "Expected a single True/False argument for " + std::string(key));
}

// A size in MiB with a lower bound, clamped like PyTorch's so MiB never overflows.
uint64_t megabytes(std::string_view key, std::string_view value, uint64_t min, bool strictly_above) {
  uint64_t mb = whole(key, value, value);
  if (strictly_above ? mb <= min : mb < min)
    bad(key, value,
        strictly_above
            ? "CachingAllocator option " + std::string(key) + " must be > " + std::to_string(min) + " MB"
            : "CachingAllocator option " + std::string(key) + " too small, must be >= " + std::to_string(min));
  return std::min(mb, kMaxMb) * kMiB;
}

size_t interval_of(uint64_t boundary_mb) {
  return std::min<size_t>(size_t(std::bit_width(boundary_mb) - 1), kDivisionIntervals - 1);
}

// "8" (every interval) or "[64:8,256:4,>:1]" (per interval, in MiB): entries
// before the first interval take its value, ">" sets every later one.
void parse_divisions(std::string_view key, std::string_view value, CcaConfig& c) {
  const std::string text = without_blanks(value);
  auto& div = c.roundup_power2_divisions;
  if (text.empty() || text.front() != '[') {
    uint64_t n = whole(key, value, text);
    if (!std::has_single_bit(n)) bad(key, value, "For roundups, the divisions has to be power of 2");
    div.fill(n);
    return;
  }
  if (text.back() != ']') bad(key, value, "Expected closing bracket ']' in ConfigTokenizer but reached end of config");
  std::string_view list = std::string_view(text).substr(1, text.size() - 2);
  bool first = true;
  size_t last = 0;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    size_t colon = item.find(':');
    if (colon == std::string_view::npos) bad(key, value, "'" + std::string(item) + "' is not interval:divisions");
    std::string_view interval = item.substr(0, colon);
    uint64_t n = whole(key, value, item.substr(colon + 1));
    if (n != 0 && !std::has_single_bit(n))
      bad(key, value, "For roundups, the divisions has to be power of 2 or 0 to disable roundup");
    if (interval == ">") {
      std::fill(div.begin() + std::min(last + 1, div.size()), div.end(), n);
      continue;
    }
    uint64_t boundary = whole(key, value, interval);
    if (!std::has_single_bit(boundary)) bad(key, value, "For roundups, the intervals have to be power of 2");
    size_t index = interval_of(boundary);
    if (first) std::fill(div.begin(), div.begin() + index, n);
    first = false;
    div[index] = n;
    last = index;
  }
}

bool is_device_key(std::string_view k) {
  return k == "large_segment_size_mb" || k == "max_split_size_mb" || k == "max_non_split_rounding_mb" ||
         k == "garbage_collection_threshold" || k == "roundup_power2_divisions" || k == "expandable_segments" ||
         k == "per_process_memory_fraction" || k == "backend" || k == "release_lock_on_cudamalloc" ||
         k == "release_lock_on_hipmalloc" || k == "graph_capture_record_stream_reuse";
}

bool is_host_key(std::string_view k) {
  return k == "pinned_use_background_threads" || k == "pinned_use_cuda_host_register" ||
         k == "pinned_use_hip_host_register" || k == "pinned_num_register_threads" ||
         k == "pinned_reserve_segment_size_mb";
}

}  // namespace

uint64_t CcaConfig::divisions_for(uint64_t size) const {
  if (size == 0) return roundup_power2_divisions[0];
  const size_t log = size_t(std::bit_width(size) - 1);
  const size_t first = size_t(std::bit_width(kMiB) - 1);
  return roundup_power2_divisions[std::min(log > first ? log - first : 0, kDivisionIntervals - 1)];
}

bool is_pytorch_key(std::string_view key) { return is_device_key(key) || is_host_key(key); }

CcaConfig parse_settings(const Settings& settings) {
  CcaConfig c;
  // large_segment_size_mb first, wherever it is: the other two sizes' minimum is it.
  for (const auto& [key, value] : settings)
    if (key == "large_segment_size_mb") c.large_segment_size = megabytes(key, value, kMinLargeAllocMb, true);
  c.max_non_split_rounding_size = c.large_segment_size;
  const uint64_t large_mb = c.large_segment_size / kMiB;

  for (const auto& [key, value] : settings) {
    if (key == "large_segment_size_mb") {
      continue;
    } else if (key == "max_split_size_mb") {
      c.max_split_size = megabytes(key, value, large_mb, false);
    } else if (key == "max_non_split_rounding_mb") {
      c.max_non_split_rounding_size = megabytes(key, value, large_mb, false);
    } else if (key == "garbage_collection_threshold") {
      double t = number(key, value);
      if (!(t > 0.0 && t < 1.0)) bad(key, value, "garbage_collect_threshold is invalid, set it in (0.0, 1.0)");
      c.garbage_collection_threshold = t;
    } else if (key == "roundup_power2_divisions") {
      parse_divisions(key, value, c);
    } else if (key == "expandable_segments") {
      c.expandable_segments = boolean(key, value);
    } else if (key == "per_process_memory_fraction") {
      double f = number(key, value);
      if (!(f >= 0.0 && f <= 1.0)) bad(key, value, "per_process_memory_fraction is invalid, set it in [0.0, 1.0]");
      c.per_process_memory_fraction = f;
    } else if (key == "backend") {
      if (value != "native" && value != "cudaMallocAsync")
        bad(key, value, "Unknown allocator backend, options are native and cudaMallocAsync");
      if (value != "native") bad(key, value, "the cca policy reproduces the native allocator, not cudaMallocAsync");
    } else if (key == "pinned_num_register_threads") {
      uint64_t n = whole(key, value, value);
      if (!std::has_single_bit(n))
        bad(key, value, "Number of register threads has to be power of 2, got " + std::to_string(n));
      if (n > kMaxRegisterThreads)
        bad(key, value, "Number of register threads should be less than or equal to " +
                            std::to_string(kMaxRegisterThreads) + ", got " + std::to_string(n));
    } else if (key == "pinned_reserve_segment_size_mb") {
      if (whole(key, value, value) == 0) bad(key, value, "Pinned reserve segment size has to be greater than 0");
    } else if (is_pytorch_key(key)) {  // the remaining keys are all True/False switches
      boolean(key, value);
    } else {
      throw Error(ErrorCode::kConfig, "unknown key '" + key + "' (Unrecognized key '" + key + "' in CUDA allocator config.)");
    }
  }
  return c;
}

void set_setting(Settings& settings, std::string_view key, std::string_view value) {
  for (auto& [k, v] : settings)
    if (k == key) {
      v = value;
      return;
    }
  settings.emplace_back(key, value);
}

Settings overlay(Settings base, const Settings& over) {
  for (const auto& [key, value] : over) set_setting(base, key, value);
  return base;
}

std::string alloc_conf_text(const Settings& settings) {
  std::string out;
  for (const auto& [key, value] : settings) out += (out.empty() ? "" : ",") + key + ":" + value;
  return out;
}

Settings split_settings(std::string_view text) {
  Settings out;
  while (!trim(text).empty()) {
    size_t end = 0;
    for (int depth = 0; end < text.size() && !(text[end] == ',' && depth == 0); ++end)
      depth += text[end] == '[' ? 1 : text[end] == ']' ? -1 : 0;
    std::string_view item = trim(text.substr(0, end));
    text = end < text.size() ? text.substr(end + 1) : std::string_view();
    if (item.empty()) continue;
    size_t colon = item.find(':');
    if (colon == std::string_view::npos) throw Error(ErrorCode::kConfig, "'" + std::string(item) + "' is not key:value");
    out.emplace_back(trim(item.substr(0, colon)), trim(item.substr(colon + 1)));
  }
  return out;
}

Settings settings_of_trace(const std::vector<std::pair<std::string, std::string>>& allocator_settings) {
  Settings out;
  auto drop = [&](std::string_view key) {
    std::erase_if(out, [&](const auto& kv) { return kv.first == key; });
  };
  // The environment text first: it alone tells the keys the decoded values lack.
  for (const auto& [key, value] : allocator_settings) {
    if (key != "PYTORCH_CUDA_ALLOC_CONF" && key != "PYTORCH_ALLOC_CONF") continue;
    try {
      Settings env = split_settings(value);
      parse_settings(env);
      for (const auto& [k, v] : env) set_setting(out, k, v);
    } catch (const Error&) {
      // Text this PyTorch does not accept: the decoded values below still hold.
    }
  }
  // Then the values the allocator reported, which win (they may have been
  // changed at run time with torch.cuda.memory._set_allocator_settings); a
  // trace hbmalloc recorded names PyTorch's keys themselves.
  auto valid = [](const std::string& key, const std::string& value) {
    try {
      parse_settings({{key, value}});
      return true;
    } catch (const Error&) {
      return false;
    }
  };
  for (const auto& [key, value] : allocator_settings) {
    if ((key == "large_segment_size_mb" || key == "max_split_size_mb" || key == "max_non_split_rounding_mb" ||
         key == "per_process_memory_fraction") && valid(key, value)) {
      set_setting(out, key, value);
    } else if (key == "max_split_size") {
      int64_t bytes = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), bytes);
      if (ec != std::errc() || end != value.data() + value.size()) continue;
      if (bytes < 0) drop("max_split_size_mb");
      else set_setting(out, "max_split_size_mb", std::to_string(uint64_t(bytes) / kMiB));
    } else if (key == "garbage_collection_threshold") {
      double t = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), t);
      if (ec != std::errc() || end != value.data() + value.size()) continue;
      if (t > 0 && valid(key, value)) set_setting(out, key, value);
      else if (t <= 0) drop(key);
    } else if (key == "expandable_segments") {
      if (value == "True") set_setting(out, key, value);
      else if (value == "False") drop(key);
    } else if (key == "roundup_power2_divisions") {
      // {"1": d0, "2": d1, ...}: interval start in MiB -> divisions (a list in older releases).
      if (!value.empty() && value.front() != '{' && valid(key, value)) {
        set_setting(out, key, value);
        continue;
      }
      nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
      std::array<uint64_t, kDivisionIntervals> div{};
      bool readable = j.is_object() || j.is_array();
      size_t index = 0;
      for (auto it = j.begin(); readable && it != j.end(); ++it, ++index) {
        uint64_t mb = uint64_t(1) << std::min(index, kDivisionIntervals - 1);
        if (j.is_object()) {
          auto [end, ec] = std::from_chars(it.key().data(), it.key().data() + it.key().size(), mb);
          readable = ec == std::errc() && std::has_single_bit(mb);
        }
        readable = readable && it->is_number_unsigned();
        if (readable) div[interval_of(mb)] = it->get<uint64_t>();
      }
      if (!readable) continue;
      if (std::all_of(div.begin(), div.end(), [](uint64_t d) { return d == 0; })) {
        drop(key);
        continue;
      }
      std::string list;
      for (size_t i = 0; i < kDivisionIntervals; ++i)
        list += (i ? "," : "[") + std::to_string(uint64_t(1) << i) + ":" + std::to_string(div[i]);
      set_setting(out, key, list + "]");
    }
  }
  try {
    parse_settings(out);
  } catch (const Error&) {
    return {};  // a combination PyTorch would refuse: describe nothing rather than guess
  }
  return out;
}

}  // namespace hbmalloc::cca

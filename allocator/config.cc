#include "hbmalloc/config.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"
#include "policy/policy_catalog.h"

namespace hbmalloc {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

[[noreturn]] void bad_value(std::string_view key, std::string_view value, const std::string& why) {
  throw Error(ErrorCode::kConfig,
              std::string(key) + ": bad value '" + std::string(value) + "' (" + why + ")");
}

double parse_double(std::string_view key, std::string_view value) {
  double d = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), d);
  if (ec != std::errc() || end != value.data() + value.size() || !std::isfinite(d))
    bad_value(key, value, "not a number");
  return d;
}

uint64_t parse_key_bytes(std::string_view key, std::string_view value) {
  try {
    return parse_bytes(value);
  } catch (const Error& e) {
    bad_value(key, value, "expected bytes such as 4096, 512MiB or 80GiB");
  }
}

bool is_power_of_two(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

// "512MiB" -> {"512", "MiB"}: the leading digits and dots, and the rest.
std::pair<std::string_view, std::string_view> number_and_unit(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  return {text.substr(0, i), text.substr(i)};
}

int64_t parse_key_micros(std::string_view key, std::string_view value) {
  const std::optional<int64_t> us = parse_duration_us(value);
  if (!us) bad_value(key, value, "expected a duration such as 0, 500us, 2ms or 1s");
  if (*us > kMaxDurationUs) bad_value(key, value, "more than an hour");
  return *us;
}

}  // namespace

std::optional<int64_t> parse_duration_us(std::string_view text) {
  const auto [number, unit] = number_and_unit(trim(text));
  const double scale = unit == "us" ? 1 : unit == "ms" ? 1e3 : unit == "s" ? 1e6 : 0;
  double d = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), d);
  const bool number_ok = !number.empty() && ec == std::errc() && end == number.data() + number.size();
  if (!number_ok || (scale == 0 && !(unit.empty() && d == 0))) return std::nullopt;
  const double us = d * scale;
  // Past an hour by a wide margin is junk too (and would not fit int64).
  if (!(us <= 1e15)) return std::nullopt;
  return int64_t(std::llround(us));
}

std::string format_duration_us(int64_t us) {
  if (us % 1000000 == 0) return std::to_string(us / 1000000) + "s";
  if (us % 1000 == 0) return std::to_string(us / 1000) + "ms";
  return std::to_string(us) + "us";
}

uint64_t parse_bytes(std::string_view text) {
  text = trim(text);
  auto [number, unit] = number_and_unit(text);
  unit = trim(unit);
  auto fail = [&](const std::string& why) -> uint64_t {
    throw Error(ErrorCode::kConfig, "'" + std::string(text) + "' " + why);
  };
  if (number.empty()) return fail("is not a byte size");
  struct Unit {
    std::string_view name;
    uint64_t scale;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},         {"B", 1},         {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30},
      {"TiB", 1ull << 40}, {"PiB", 1ull << 50}, {"KB", 1000},  {"MB", 1000000},     {"GB", 1000000000},
      {"TB", 1000000000000}, {"PB", 1000000000000000}, {"K", 1ull << 10}, {"M", 1ull << 20}, {"G", 1ull << 30},
      {"T", 1ull << 40}, {"P", 1ull << 50}};
  const Unit* u = nullptr;
  for (const Unit& candidate : kUnits)
    if (unit == candidate.name) u = &candidate;
  if (u == nullptr) return fail("has an unknown unit '" + std::string(unit) + "'");

  // Whole numbers are parsed exactly: a capacity must round-trip to the byte.
  if (number.find('.') == std::string_view::npos) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || end != number.data() + number.size() || value > UINT64_MAX / u->scale)
      return fail("is too large");
    return value * u->scale;
  }
  double value = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size()) return fail("is not a byte size");
  double bytes = value * double(u->scale);
  if (bytes >= 9007199254740992.0) return fail("is too large for a fraction: give whole bytes");
  if (bytes != std::floor(bytes)) return fail("is not a whole number of bytes");
  return uint64_t(bytes);
}

std::string format_number(double x) {
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof text, x);
  return ec == std::errc() ? std::string(text, end) : std::to_string(x);
}

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = double(bytes);
  int i = 0;
  while (v >= 1024.0 && i < 5) {
    v /= 1024.0;
    ++i;
  }
  char buf[64];
  if (i == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.2f %s", v, kNames[i]);
  return buf;
}

Config Config::parse(std::string_view text) {
  Config c;
  // PyTorch's syntax: a list value ("[256:1,>:8]") keeps its commas.
  for (const auto& [key_text, value_text] : cca::split_settings(text)) {
    std::string_view key = key_text, value = value_text;
    if (value.empty()) bad_value(key, value, "empty");

    if (key == "policy") {
      if (find_policy(value) == nullptr) bad_value(key, value, "known policies: " + policy_names());
      c.policy = value;
    } else if (key == "backend") {
      if (value != "cuda" && value != "sim" && value != "host") bad_value(key, value, "expected cuda, sim or host");
      c.backend = value;
    } else if (key == "capacity") {
      c.capacity = parse_key_bytes(key, value);
      if (c.capacity > kMaxDeviceBytes) bad_value(key, value, "more than the largest device hbmalloc models, 1 PiB");
    } else if (key == "memory_fraction") {
      c.memory_fraction = parse_double(key, value);
      if (!(c.memory_fraction > 0.0 && c.memory_fraction <= 1.0)) bad_value(key, value, "must be in (0, 1]");
    } else if (key == "small_size") {
      c.small_size = parse_key_bytes(key, value);
      if (c.small_size < 512) bad_value(key, value, "must be at least 512 B");
    } else if (key == "slab_size") {
      c.slab_size = parse_key_bytes(key, value);
      // A slot bitmap covers at most 4096 slots of 512 B.
      if (!is_power_of_two(c.slab_size) || c.slab_size < (64 << 10) || c.slab_size > (2ull << 20))
        bad_value(key, value, "must be a power of two between 64KiB and 2MiB");
    } else if (key == "mid_size") {
      c.mid_size = parse_key_bytes(key, value);
      if (c.mid_size > kMaxDeviceBytes) bad_value(key, value, "more than the largest device hbmalloc models, 1 PiB");
    } else if (key == "segment_round") {
      c.segment_round = parse_key_bytes(key, value);
      if (!is_power_of_two(c.segment_round) || c.segment_round < 512)
        bad_value(key, value, "must be a power of two of at least 512 B");
    } else if (key == "sim_devices") {
      double d = parse_double(key, value);
      if (d != std::floor(d) || d < 1 || d > 1024) bad_value(key, value, "must be a whole number in 1..1024");
      c.sim_devices = int(d);
    } else if (key == "sim_lag") {
      c.sim_lag_us = parse_key_micros(key, value);
    } else if (key == "ipc") {
      if (value != "on" && value != "off") bad_value(key, value, "expected on or off");
      c.ipc = value == "on";
    } else if (c.vmm.parse_key(key, value)) {
    } else if (cca::is_pytorch_key(key)) {
      cca::set_setting(c.pytorch_settings, key, value);
    } else {
      throw Error(ErrorCode::kConfig,
                  "unknown key '" + std::string(key) +
                      "' (known: policy, backend, capacity, memory_fraction, small_size, slab_size, "
                      "mid_size, segment_round, sim_devices, sim_lag, ipc, " + VmmConfig::kKeys +
                      ", and PyTorch's allocator keys for policy cca)");
    }
  }
  cca::parse_settings(c.pytorch_settings);  // PyTorch's checks, which need all its keys at once
  if (c.small_size > c.slab_size / 2)
    throw Error(ErrorCode::kConfig, "small_size: " + std::to_string(c.small_size) +
                                        " must be at most half of slab_size (" + std::to_string(c.slab_size) + ")");
  return c;
}

Config Config::from_env() {
  const char* text = std::getenv("HBMALLOC_CONF");
  return parse(text ? text : "");
}

std::vector<std::pair<std::string, std::string>> Config::items() const {
  std::vector<std::pair<std::string, std::string>> out{{"policy", policy},
          {"backend", backend},
          {"capacity", std::to_string(capacity)},
          {"memory_fraction", format_number(memory_fraction)},
          {"small_size", std::to_string(small_size)},
          {"slab_size", std::to_string(slab_size)},
          {"mid_size", std::to_string(mid_size)},
          {"segment_round", std::to_string(segment_round)},
          {"sim_devices", std::to_string(sim_devices)}};
  // Listed only when off: it changes nothing but the cuda backend's sharing,
  // and the text of every replay and trace would otherwise grow by it.
  if (!ipc) out.emplace_back("ipc", "off");
  if (sim_lag_us != 0) out.emplace_back("sim_lag", std::to_string(sim_lag_us) + "us");
  for (auto& item : vmm.items()) out.push_back(std::move(item));
  out.insert(out.end(), pytorch_settings.begin(), pytorch_settings.end());
  return out;
}

std::string Config::to_string() const {
  std::string out;
  for (const auto& [key, value] : items()) out += (out.empty() ? "" : ",") + key + ":" + value;
  return out;
}

}  // namespace hbmalloc

#include "cli_args.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"

namespace hbmalloc::tools {

Args::Args(std::string command, std::set<std::string> valued, std::set<std::string> switches)
    : command_(std::move(command)), valued_(std::move(valued)), switches_(std::move(switches)) {}

bool Args::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() < 2 || a.rfind("--", 0) != 0) {
      if (a.size() > 1 && a[0] == '-') {
        fail("unknown option '" + a + "'");
        return false;
      }
      positional_.push_back(a);
      continue;
    }
    std::string name = a, inline_value;
    bool has_inline = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      inline_value = a.substr(eq + 1);
      has_inline = true;
    }
    if (switches_.count(name) && !has_inline) {
      present_.insert(name);
    } else if (valued_.count(name)) {
      if (!has_inline && i + 1 >= argc) {
        fail("option '" + name + "' needs a value");
        return false;
      }
      values_[name] = has_inline ? inline_value : std::string(argv[++i]);
      present_.insert(name);
    } else {
      fail("unknown option '" + a + "'");
      return false;
    }
  }
  return true;
}

bool Args::has(const std::string& name) const { return present_.count(name) > 0; }

std::optional<std::string> Args::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

bool Args::bytes(const std::string& name, std::optional<uint64_t>& out) const {
  auto v = value(name);
  if (!v) return true;
  try {
    out = parse_bytes(*v);
  } catch (const Error&) {
    fail("option '" + name + "' wants a size such as 80GiB or 512MiB, got '" + *v + "'");
    return false;
  }
  return true;
}

bool Args::capacity(const std::string& name, std::optional<uint64_t>& out) const {
  if (!bytes(name, out)) return false;
  // A device of 0 bytes would read as unlimited (capacity:0 in the settings).
  if (out && *out == 0) {
    fail("option '" + name + "' wants a size above 0 (leave it out for an unlimited device)");
    return false;
  }
  if (out && *out > kMaxDeviceBytes) {
    fail("option '" + name + "' wants at most 1 PiB (" + std::to_string(kMaxDeviceBytes) +
         " bytes), the largest device hbmalloc models; got " + std::to_string(*out));
    return false;
  }
  return true;
}

bool Args::integer(const std::string& name, long min, long max, long& out) const {
  auto v = value(name);
  if (!v) return true;
  char* end = nullptr;
  long n = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || n < min || n > max) {
    fail("option '" + name + "' wants a whole number in " + std::to_string(min) + ".." + std::to_string(max) +
         ", got '" + *v + "'");
    return false;
  }
  out = n;
  return true;
}

bool Args::input_limits(trace::InputLimits& out) const {
  std::optional<uint64_t> max;
  if (!bytes(trace::kMaxInputFlag, max)) return false;
  if (max) {
    out.max_bytes = *max;
    out.chosen = true;
  }
  return true;
}

void Args::fail(const std::string& message) const {
  std::fprintf(stderr, "hbmalloc %s: %s\n", command_.c_str(), message.c_str());
}

bool stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label) : label_(std::move(label)), active_(stderr_is_terminal()) {}

Progress::~Progress() {
  if (active_ && last_percent_ >= 0) std::fprintf(stderr, "\r\033[K");
}

void Progress::update(uint64_t done, uint64_t total) {
  if (!active_ || total == 0) return;
  int percent = int(done * 100 / total);
  if (percent == last_percent_) return;
  last_percent_ = percent;
  constexpr int kWidth = 40;
  int filled = percent * kWidth / 100;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%", label_.c_str(), filled, "########################################",
               kWidth - filled, "", percent);
  std::fflush(stderr);
}

}  // namespace hbmalloc::tools

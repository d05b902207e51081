// A small flag parser shared by the subcommands: "--name value" options,
// "--flag" switches and positional arguments, with errors that name the flag.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hbmalloc/error.hpp"
#include "trace/input_limits.h"

namespace hbmalloc::tools {

// Runs f, which reads the settings a command-line option gave: a bad key or
// value is named as that option's (the commands read no HBMALLOC_CONF).
template <typename F>
auto settings_of_option(const std::string& option, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kConfig) throw;
    throw Error(ErrorCode::kInvalidArgument, "option '" + option + "': " + e.message());
  }
}

class Args {
 public:
  // `valued` are options that take a value, `switches` those that do not.
  Args(std::string command, std::set<std::string> valued, std::set<std::string> switches);

  // False (after printing why to stderr) on an unknown or incomplete option.
  bool parse(int argc, char** argv);

  bool has(const std::string& name) const;
  std::optional<std::string> value(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

  // Typed values; false (after printing why) when the text does not parse.
  bool bytes(const std::string& name, std::optional<uint64_t>& out) const;
  bool integer(const std::string& name, long min, long max, long& out) const;
  // A device capacity: a size above 0 and no larger than the largest device hbmalloc models.
  bool capacity(const std::string& name, std::optional<uint64_t>& out) const;
  // --max-input SIZE (a command that reads traces lists it among its options).
  bool input_limits(trace::InputLimits& out) const;

  // Prints "hbmalloc <command>: <message>" to stderr.
  void fail(const std::string& message) const;

 private:
  std::string command_;
  std::set<std::string> valued_, switches_;
  std::map<std::string, std::string> values_;
  std::set<std::string> present_;
  std::vector<std::string> positional_;
};

// True when stderr is a terminal (progress bars go there only then).
bool stderr_is_terminal();

// A one-line progress bar on stderr, redrawn in place; silent when stderr is
// not a terminal.
class Progress {
 public:
  explicit Progress(std::string label);
  ~Progress();
  void update(uint64_t done, uint64_t total);

 private:
  std::string label_;
  bool active_;
  int last_percent_ = -1;
};

}  // namespace hbmalloc::tools

#include "trace/write_trace.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "hbmalloc/error.hpp"
#include "record/write_file.h"
#include "record/hbt_writer.h"
#include "trace/jsonl_format.h"
#include "record/snapshot_writer.h"

namespace hbmalloc::trace {

std::optional<std::string> output_format_of(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (ext == ".pickle" || ext == ".pkl") return "pytorch-snapshot";
  if (ext == ".hbt") return "hbt";
  if (ext == ".jsonl") return "jsonl";
  return std::nullopt;
}

void write_trace_file(const Trace& trace, const std::string& path) {
  const std::optional<std::string> format = output_format_of(path);
  if (format == "pytorch-snapshot")
    write_whole_file(path, write_pytorch_snapshot(trace));
  else if (format == "hbt")
    write_hbt_file(trace, path);
  else if (format == "jsonl")
    write_jsonl_file(trace, path);
  else
    throw Error(ErrorCode::kInvalidArgument,
                path + ": cannot tell the output format: name it .pickle or .pkl (PyTorch snapshot), .hbt or .jsonl");
}

}  // namespace hbmalloc::trace

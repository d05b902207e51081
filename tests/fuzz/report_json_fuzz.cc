// A saved report is input too (`hbmalloc report saved.json`): arbitrary bytes
// give a FragReport that renders, or an hbmalloc::Error; nothing else.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hbmalloc/error.hpp"
#include "report/html_report.h"
#include "report/json_report.h"
#include "report/text_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    hbmalloc::report::FragReport r = hbmalloc::report::report_from_json_text(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
    (void)hbmalloc::report::render_text(r);
    (void)hbmalloc::report::render_html(r);
    (void)nlohmann::json(r).dump();
  } catch (const hbmalloc::Error&) {
  }
  return 0;
}

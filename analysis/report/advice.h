// What the report concludes: why each OOM happened and what would have
// avoided it, and the closing "what to do" list.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replay/replay.h"
#include "report/frag_report.h"

namespace hbmalloc::report {

// The OOM with its cause ("stream", "fragmentation" or "capacity") and advice.
OomReport explain_oom(const replay::OomRecord& oom, std::optional<uint64_t> min_capacity);

// Whether a moment's cached free memory is both sizeable (5% of reserved or
// more) and in pieces (external fragmentation 50% or more).
bool fragmentation_matters(const MomentFigures& m);

// What became of a request the recording failed, in this replay:
// "served here; the recording failed it" or "failed here too (an OOM of this replay)".
std::string failed_request_verdict(const replay::FailedRequest& f);

// The OOMs, and the requests the recording failed, past those the text and
// HTML reports write out (kOomsListed), in one line ("" when none are left).
std::string unlisted_ooms(const std::vector<OomReport>& ooms);
std::string unlisted_failed_requests(const std::vector<replay::FailedRequest>& failed);

// The closing recommendations, most important first; never empty.
std::vector<std::string> what_to_do(const FragReport& report, std::optional<uint64_t> min_capacity);

}  // namespace hbmalloc::report

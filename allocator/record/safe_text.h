// Text from a file (names, settings, recorder strings, file names) made safe
// to print and to store: valid UTF-8 with no control characters, so it can
// reach a terminal, a JSON dump or a pickle without harm.
#pragma once

#include <string>
#include <string_view>

namespace hbmalloc::trace {

// Valid UTF-8 sequences are kept; a byte that starts none, and every control
// character (C0, DEL, C1), becomes "\xNN". Text that is already safe comes
// back unchanged, so applying it twice changes nothing.
std::string safe_text(std::string_view text);

}  // namespace hbmalloc::trace

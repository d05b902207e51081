#pragma once

namespace hbmalloc::tools {

// `hbmalloc demo`: returns the process exit code.
int run_demo(int argc, char** argv);

}  // namespace hbmalloc::tools

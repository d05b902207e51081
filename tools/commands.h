// The subcommands of the `hbmalloc` command line; each returns the exit code
// (0 ran, 1 out of memory where that is a failure, 2 bad usage or input).
#pragma once

namespace hbmalloc::tools {

int run_replay(int argc, char** argv);
int run_info(int argc, char** argv);
int run_synth(int argc, char** argv);
int run_report(int argc, char** argv);
int run_demo(int argc, char** argv);
int run_convert(int argc, char** argv);
int run_tune(int argc, char** argv);
int run_explain(int argc, char** argv);
int run_diff(int argc, char** argv);

}  // namespace hbmalloc::tools

// The `hbmalloc` command line. Until trace replay lands, `demo` drives the
// allocator on the sim backend with a training-like pattern and prints stats.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "commands.h"
#include "demo.h"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: hbmalloc <command> [options]\n"
               "\n"
               "commands:\n"
               "  demo [--steps N] [--conf K:V,...] [--json]\n"
               "      Runs a training-like allocation pattern (parameters, activations that grow\n"
               "      and shrink, a size mix of small and large tensors on two streams) on the\n"
               "      sim backend and prints the allocator's statistics. --conf takes\n"
               "      HBMALLOC_CONF syntax (backend is always sim here).\n"
               "  help\n"
               "      This text.\n"
               "\n"
               "exit codes: 0 ran, 1 out of memory, 2 bad usage or input\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string_view command = argv[1];
  if (command == "help" || command == "--help" || command == "-h") {
    usage(stdout);
    return 0;
  }
  if (command == "demo") return hbmalloc::tools::run_demo(argc - 2, argv + 2);
  if (command == "replay") return hbmalloc::tools::run_replay(argc - 2, argv + 2);
  if (command == "info") return hbmalloc::tools::run_info(argc - 2, argv + 2);
  if (command == "synth") return hbmalloc::tools::run_synth(argc - 2, argv + 2);
  if (command == "report") return hbmalloc::tools::run_report(argc - 2, argv + 2);
  std::fprintf(stderr, "hbmalloc: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}

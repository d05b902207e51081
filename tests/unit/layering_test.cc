// Tests for cmake/check_layers.cmake, which every build runs first: the
// project's own tree passes, and a file including a layer it must not fails
// the check with a line naming the file, the include and what it may include.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/scratch.h"
#include "support/slurp.h"

namespace hbmalloc {
namespace {

namespace fs = std::filesystem;

struct Check {
  int code = -1;
  std::string output;
};

Check check_layers(const fs::path& source_dir) {
  const fs::path out = testing::scratch_dir("layers") / "out.txt";
  const std::string cmd = std::string(HBMALLOC_CMAKE) + " -DSOURCE_DIR=" + source_dir.string() + " -P " +
                          HBMALLOC_SOURCE_DIR + "/cmake/check_layers.cmake >" + out.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, testing::slurp(out)};
}

void write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

TEST(Layering, TheProjectKeepsItsLayers) {
  const Check c = check_layers(HBMALLOC_SOURCE_DIR);
  EXPECT_EQ(c.code, 0) << c.output;
}

TEST(Layering, AnIncludeAgainstTheLayersFailsNamingIt) {
  const fs::path tree = testing::scratch_dir("layers_tree");
  write(tree / "allocator/core/up.cc", "#include \"policy/policy.h\"\n#include \"hbmalloc/error.hpp\"\n");
  write(tree / "allocator/policy/fine.cc", "#include \"backend/backend.h\"\n#include <vector>\n");
  write(tree / "allocator/backend/analyser.cc", "#include \"replay/replay.h\"\n");
  write(tree / "analysis/trace/sideways.h", "#include \"report/format.h\"\n");
  write(tree / "analysis/report/fine.cc", "#include \"tune/sweep.h\"\n#include \"record/trace.h\"\n");
  const Check c = check_layers(tree);
  EXPECT_NE(c.code, 0);
  EXPECT_NE(c.output.find("allocator/core/up.cc includes policy/policy.h: core may include only core"),
            std::string::npos)
      << c.output;
  EXPECT_NE(c.output.find("allocator/backend/analyser.cc includes replay/replay.h"), std::string::npos) << c.output;
  EXPECT_NE(c.output.find("analysis/trace/sideways.h includes report/format.h"), std::string::npos) << c.output;
  EXPECT_EQ(c.output.find("fine.cc"), std::string::npos) << c.output;
}

TEST(Layering, AFolderWithoutRulesIsNamed) {
  const fs::path tree = testing::scratch_dir("layers_new_folder");
  write(tree / "allocator/newthing/x.cc", "#include \"core/helpers.h\"\n");
  const Check c = check_layers(tree);
  EXPECT_NE(c.code, 0);
  EXPECT_NE(c.output.find("folder newthing has no entry"), std::string::npos) << c.output;
}

}  // namespace
}  // namespace hbmalloc

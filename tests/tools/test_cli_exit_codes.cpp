// The CLI's one exit-code rule (tools/nephroseg/options.h): 0 success, 1 failure,
// 2 usage error; checked for every subcommand that has required options.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "support/golden.h"

using namespace nephroseg::test;

TEST(CliExitCodes, EveryMissingRequiredOptionIsAUsageError) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  // (command line, the option named in the error)
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sam", "--checkpoint"},
      {"sam --checkpoint a.pth --out o", "--image"},
      {"medsam", "--checkpoint"},
      {"features", "--checkpoint"},
      {"gbmseg", "--reference-image"},
      {"gbmseg --reference-image a --reference-mask b --target c --out d", "--dinov2-checkpoint"},
      {"glomsam train", "--images"},
      {"glomsam train-unet", "--images"},
      {"glomsam predict", "--checkpoint"},
      {"measure", "--mask"},
      {"phantom", "--out"},
      {"eval", "--pred"},
      {"info", "files"},
      {"slide", "--slide"},
      {"merge", "OUT"},
  };
  for (const auto& [args, option] : cases) {
    const CliRun r = run_cli(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(option), std::string::npos) << args << "\n" << r.output;
  }
}

TEST(CliExitCodes, UnknownOptionsAndMalformedSyntaxAreUsageErrors) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  for (const std::string args : {"eval --pred a --truth b --out c --no-such-option", "no-such-command",
                                 "phantom --out x --count notanumber", ""}) {
    const CliRun r = run_cli(args);
    EXPECT_EQ(r.code, 2) << "'" << args << "'\n" << r.output;
  }
}

TEST(CliExitCodes, HelpAndVersionSucceedAndBadInputFails) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const CliRun help = run_cli("--help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.output.find("Exit codes"), std::string::npos) << help.output;
  EXPECT_EQ(run_cli("--version").code, 0);
  EXPECT_EQ(run_cli("eval --help").code, 0);
  const std::string dir = temp_dir("exit_codes");
  const CliRun missing = run_cli("eval --pred " + dir + "/none --truth " + dir + "/none --out " + dir + "/out");
  EXPECT_EQ(missing.code, 1) << missing.output;
  const CliRun nan = run_cli("medsam --checkpoint x.pth --image y.png --box 1,2,nan,4 --out " + dir + "/m");
  EXPECT_EQ(nan.code, 1) << nan.output;
  EXPECT_NE(nan.output.find("--box: 'nan' is not a finite number"), std::string::npos) << nan.output;
}

// The global --precision option end to end: parsing (exit 2 for an unknown name),
// resolution (auto), and the record in result.json / run.json.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "nephroseg/core/precision.h"
#include "support/golden.h"

namespace nephroseg {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

TEST(PrecisionCli, UnknownNameIsAUsageError) {
  if (!test::have_cli()) GTEST_SKIP() << "nephroseg CLI not built";
  const test::CliRun r = test::run_cli("--precision fp16 info");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--precision"), std::string::npos) << r.output;
}

TEST(PrecisionCli, SamRecordsTheResolvedPrecision) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  NEPHRO_REQUIRE_SHARED("data/gbmseg_sample/reference_image/001_264193_2.png");
  if (!test::have_cli()) GTEST_SKIP() << "nephroseg CLI not built";
  const std::string g = test::shared_path("golden/models");
  const std::string image = test::shared_path("data/gbmseg_sample/reference_image/001_264193_2.png");
  const std::string dir = test::temp_dir("precision_cli");
  const std::string args = " sam --checkpoint " + g + "/sam_tiny.pth --model-config " + g +
                           "/sam_tiny.json --image " + image + " --box 10,10,200,200 --out ";
  const std::string expect_auto = cpu_features().native_bf16() ? "bf16" : "fp32";
  // Without VNNI / AMX-INT8 int8 is refused unless forced (one line, exit 1, nothing
  // written); forced, it runs with 7-bit weights and says so.
  const bool int8_native = cpu_features().native_int8();
  if (!int8_native) {
    const test::CliRun r = test::run_cli("--quiet --precision int8" + args + dir + "/refused");
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find("error: precision int8: this CPU has no int8 dot products"),
              std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir + "/refused/result.json"));
  }
  for (const std::string p : {"fp32", "int8", "auto"}) {
    const std::string force = p == "int8" && !int8_native ? " --force-precision" : "";
    const test::CliRun r = test::run_cli("--quiet" + force + " --precision " + p + args + dir + "/" + p);
    ASSERT_EQ(r.code, 0) << p << ": " << r.output;
    const nlohmann::json j = read_json(dir + "/" + p + "/result.json");
    const nlohmann::json& rec = j.at("precision");
    EXPECT_EQ(rec.at("requested"), p);
    EXPECT_EQ(rec.at("precision"), p == "auto" ? expect_auto : p);
    EXPECT_EQ(rec.at("native_bf16").get<bool>(), cpu_features().native_bf16());
    EXPECT_EQ(rec.at("native_int8").get<bool>(), int8_native);
    if (p == "int8")
      EXPECT_EQ(rec.at("int8_weight_bits").get<int>(), cpu_features().full_range_int8() ? 8 : 7);
  }
  // The int8 encoder really ran something else than fp32.
  const auto iou = [&](const std::string& p) {
    return read_json(dir + "/" + p + "/result.json").at("iou_predictions").at(0).get<double>();
  };
  EXPECT_NE(iou("int8"), iou("fp32"));
}

}  // namespace
}  // namespace nephroseg

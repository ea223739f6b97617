// `nephroseg gbmseg` with thickness and several references, end to end through the CLI
// (weight-free backends, a calibrated DM4 phantom written here).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/measure/phantom.h"
#include "support/calibrated_files.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg;
using namespace nephroseg::test;

namespace {

struct Workload {
  std::string dir, base;  // base: the gbmseg options up to --out
};

Workload workload(const std::string& tag) {
  Workload w;
  w.dir = temp_dir(tag);
  measure::PhantomOptions po;
  po.thickness_px = 24;
  po.texture = false;
  po.seed = 5;
  const measure::Phantom ref = measure::generate_phantom(po);
  io::write_png(w.dir + "/ref.png", ref.image);
  io::write_mask_png(w.dir + "/ref_mask.png", ref.mask);
  po.seed = 6;
  const measure::Phantom t = measure::generate_phantom(po);
  cv::Mat t16;
  t.image.convertTo(t16, CV_16U, 100.0, 500.0);
  fs::create_directories(w.dir + "/targets");
  std::ofstream(w.dir + "/targets/t.dm4", std::ios::binary) << dm_image_uint16(t16, 12.5, u"nm");
  io::write_png(w.dir + "/plain.png", t.image);
  w.base = "gbmseg --features classical --segmenter classical --reference-image " + w.dir +
           "/ref.png --reference-mask " + w.dir + "/ref_mask.png";
  return w;
}

}  // namespace

TEST(CliGbmSegMeasure, CalibratedDmTargetIsMeasured) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const Workload w = workload("cli_gbmseg_measure");
  // A second reference (the same pair) is pooled; --measure with the file's own pixel size.
  const CliRun r = run_cli(w.base + " --reference-image " + w.dir + "/ref.png --reference-mask " + w.dir +
                           "/ref_mask.png --target " + w.dir + "/targets --out " + w.dir + "/out --measure");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("2 references pooled"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" nm ("), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("thickness measured in 1 of 1 target(s)"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_regular_file(w.dir + "/out/t.thickness.png"));
  EXPECT_TRUE(fs::is_regular_file(w.dir + "/out/report.html"));
  std::ifstream in(w.dir + "/out/summary.csv");
  std::string header;
  std::getline(in, header);
  EXPECT_NE(header.find("thickness_direct_median_nm"), std::string::npos) << header;
  std::string row;
  std::getline(in, row);
  EXPECT_NE(row.find(",12.5,dm,"), std::string::npos) << row;
}

TEST(CliGbmSegMeasure, BadThicknessAndReferenceOptions) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const Workload w = workload("cli_gbmseg_measure_bad");
  struct Case {
    std::string args;
    int code;
    std::string message;
  };
  const Case cases[] = {
      {" --reference-image " + w.dir + "/ref.png --target " + w.dir + "/plain.png --out " + w.dir + "/o1", 2,
       "one mask per reference image"},
      {" --target " + w.dir + "/plain.png --out " + w.dir + "/o2 --measure --no-measure", 2, "exclude each other"},
      {" --target " + w.dir + "/plain.png --out " + w.dir + "/o3 --measure", 1, "no pixel size for"},
      {" --target " + w.dir + "/plain.png --out " + w.dir + "/o4 --nm-per-pixel -3", 1, "--nm-per-pixel must be"},
      {" --target " + w.dir + "/plain.png --out " + w.dir + "/o5 --thickness-range nope", 1, "nope"},
  };
  for (const Case& c : cases) {
    const CliRun r = run_cli(w.base + c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
  }
  for (const char* o : {"/o3", "/o4", "/o5"}) EXPECT_FALSE(fs::exists(w.dir + o)) << o;
}

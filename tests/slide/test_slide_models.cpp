// The model segmenters of `nephroseg slide` (slide/model_segmenter.h) on the tiny golden
// models: on a slide that is one tile, the stitched labels must be exactly what the
// model gives on the image by itself (GlomSAM's automatic box; SAM with the box of the
// classical detector's object), and the run must record which segmenter ran.
#include <gtest/gtest.h>
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>

#include "nephroseg/core/error.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/sam.h"
#include "nephroseg/slide/model_segmenter.h"
#include "nephroseg/slide/run.h"
#include "slide_fixtures.h"
#include "support/golden.h"

namespace slide = nephroseg::slide;
namespace t = nephroseg::test;

namespace {

// A fluorescence-like picture: dim tissue, one bright ellipse, noise.
cv::Mat picture(int side) {
  cv::Mat grey(side, side, CV_8U, cv::Scalar(40));
  cv::ellipse(grey, {side / 2 + 7, side / 2 - 5}, {side / 5, side / 6}, 20, 0, 360, cv::Scalar(210), cv::FILLED);
  cv::Mat noise(grey.size(), CV_16S);
  cv::RNG rng(11);
  rng.fill(noise, cv::RNG::NORMAL, 0, 3);
  cv::Mat g16;
  grey.convertTo(g16, CV_16S);
  g16 += noise;
  g16.convertTo(grey, CV_8U);
  cv::Mat rgb;
  cv::merge(std::vector<cv::Mat>{grey / 4, grey, grey / 2}, rgb);
  return rgb;
}

// One tile, no halo, no tissue step, filters off: the labels are the segmenter's mask.
slide::SlideRunOptions one_tile(int side) {
  slide::SlideRunOptions o;
  o.mpp = 1.0;
  o.tile = side;
  o.halo = 0;
  o.tissue.mode = slide::TissueMode::kNone;
  o.filter.min_area_um2 = 0;
  o.filter.max_area_um2 = 1e12;
  o.filter.min_solidity = 0;
  o.filter.min_circularity = 0;
  return o;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(SlideModels, GlomSamOnOneTileEqualsThePredictionOnTheImage) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_model.pth");
  slide::SegmenterSpec spec;
  spec.name = "glomsam";
  spec.checkpoint = t::shared_path("golden/glomsam/full_model.pth");
  spec.config = "tiny";
  auto seg = slide::make_segmenter(spec);
  const int side = seg->input_side();
  ASSERT_GT(side, 0);
  const std::string dir = t::temp_dir("slide_glomsam");
  const cv::Mat rgb = picture(side);
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imwrite(dir + "/s.png", bgr));

  EXPECT_EQ(seg->name(), "glomsam");
  const auto r = slide::run_slide(dir + "/s.png", dir + "/out", *seg, one_tile(side));
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(r.tiles_total, 1);
  const cv::Mat labels = t::read_label_level(dir + "/out/labels.ome.tif", 0);

  auto model = nephroseg::glomsam::GlomSamModel::load(spec.checkpoint,
                                                      nephroseg::glomsam::GlomSamConfig::preset("tiny"));
  const auto direct = model->predict(rgb);
  const cv::Mat expected = nephroseg::io::tensor_to_mat(direct.mask.to(at::kByte).mul(255));
  ASSERT_EQ(labels.size(), expected.size());
  EXPECT_EQ(cv::countNonZero((labels > 0) != expected), 0) << "labels > 0 must be GlomSAM's mask";
  EXPECT_GT(r.objects.size() + static_cast<size_t>(cv::countNonZero(expected) == 0), 0u);

  const auto run = read_json(dir + "/out/run.json");
  EXPECT_EQ(run["segmenter"], "glomsam");
  EXPECT_EQ(run["segmenter_config"]["model"], "glomsam");
  EXPECT_TRUE(run["segmenter_config"].contains("checkpoint_fingerprint"));
}

TEST(SlideModels, SamWithTheDetectorsBoxEqualsSamWithThatBox) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  const int side = 256;
  const std::string dir = t::temp_dir("slide_sam");
  const cv::Mat rgb = picture(side);
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imwrite(dir + "/s.png", bgr));

  // The classical detector's object gives the box.
  auto classical = slide::make_segmenter("classical");
  const auto rc = slide::run_slide(dir + "/s.png", dir + "/classical", *classical, one_tile(side));
  ASSERT_EQ(rc.objects.size(), 1u) << "the picture holds one bright object";
  const cv::Rect b = rc.objects[0].bbox_l0;

  slide::SegmenterSpec spec;
  spec.name = "sam";
  spec.checkpoint = t::shared_path("golden/models/sam_tiny.pth");
  spec.config = t::shared_path("golden/models/sam_tiny.json");
  auto seg = slide::make_segmenter(spec);
  const auto r = slide::run_slide(dir + "/s.png", dir + "/sam", *seg, one_tile(side));
  ASSERT_TRUE(r.complete);
  const cv::Mat labels = t::read_label_level(dir + "/sam/labels.ome.tif", 0);

  auto model = nephroseg::sam::SamModel::load(spec.checkpoint, nephroseg::sam::SamConfig::from_json(spec.config));
  const auto emb = model->encode(nephroseg::io::mat_to_tensor(rgb));
  nephroseg::sam::SamPrompt prompt;
  prompt.box = std::array<float, 4>{static_cast<float>(b.x), static_cast<float>(b.y),
                                    static_cast<float>(b.x + b.width), static_cast<float>(b.y + b.height)};
  const auto direct = model->predict(emb, prompt);
  const cv::Mat expected = nephroseg::io::tensor_to_mat(direct.masks[direct.best_index()]);
  ASSERT_EQ(labels.size(), expected.size());
  EXPECT_EQ(cv::countNonZero((labels > 0) != expected), 0) << "labels > 0 must be SAM's mask for the box";
  EXPECT_EQ(read_json(dir + "/sam/run.json")["segmenter"], "sam");
}

TEST(SlideModels, BadSegmenterSpecsAreClearErrors) {
  auto spec_error = [](const slide::SegmenterSpec& s) { return t::error_of([&] { slide::make_segmenter(s); }); };
  slide::SegmenterSpec s;
  s.name = "glomsam";
  EXPECT_NE(spec_error(s).find("--segmenter glomsam needs --checkpoint"), std::string::npos) << spec_error(s);
  s.checkpoint = "/nonexistent/x.pth";
  EXPECT_NE(spec_error(s).find("does not exist"), std::string::npos) << spec_error(s);
  s.name = "classical";
  EXPECT_NE(spec_error(s).find("takes no --checkpoint"), std::string::npos) << spec_error(s);
  s.name = "unet";
  EXPECT_NE(spec_error(s).find("unknown segmenter 'unet'"), std::string::npos) << spec_error(s);
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  s.name = "medsam";
  s.checkpoint = t::shared_path("golden/models/sam_tiny.pth");
  s.config = t::shared_path("golden/models/sam_tiny.json");
  EXPECT_NE(spec_error(s).find("is not a MedSAM config"), std::string::npos) << spec_error(s);
}

// SAM's automatic mask generator: parity with segment-anything's
// SamAutomaticMaskGenerator (dca509f) and ksugar's fork (output_type,
// include_image_edge) on the tiny random-weight SAM, against
// tests/golden/automask/automask.ref.pt (made by make_golden.py there; README gives the
// tolerance). Also: that a perturbed option is caught by the same comparison. The
// steps alone and option validation: test_automask_steps.cpp (unit).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nephroseg/core/threads.h"
#include "nephroseg/sam/automask.h"
#include "support/golden.h"

namespace nephroseg::sam {
namespace {

using nephroseg::test::load_ref_pt;
using nephroseg::test::shared_path;
using nephroseg::test::source_dir;

// Scores are float32 outputs of the same LibTorch ops as the reference.
constexpr double kScoreAtol = 1e-5;
// A mask pixel may flip where float32 noise crosses the logit threshold; per mask at
// most this many pixels may differ (measured: 0, see the README).
constexpr int64_t kMaxFlippedPixels = 2;

std::string golden_dir() { return source_dir() + "/tests/golden/automask"; }

AutomaskOptions options_from_json(const nlohmann::json& j) {
  AutomaskOptions o = AutomaskOptions::segment_anything();  // the "sa" generator
  for (const auto& [key, v] : j.items()) {
    if (key == "points_per_side") o.points_per_side = v.get<int>();
    else if (key == "points_per_batch") o.points_per_batch = v.get<int>();
    else if (key == "pred_iou_thresh") o.pred_iou_thresh = v.get<double>();
    else if (key == "stability_score_thresh") o.stability_score_thresh = v.get<double>();
    else if (key == "stability_score_offset") o.stability_score_offset = v.get<double>();
    else if (key == "box_nms_thresh") o.box_nms_thresh = v.get<double>();
    else if (key == "crop_n_layers") o.crop_n_layers = v.get<int>();
    else if (key == "crop_nms_thresh") o.crop_nms_thresh = v.get<double>();
    else if (key == "crop_overlap_ratio") o.crop_overlap_ratio = v.get<double>();
    else if (key == "crop_n_points_downscale_factor")
      o.crop_n_points_downscale_factor = v.get<int>();
    else if (key == "min_mask_region_area") o.min_mask_region_area = v.get<int>();
    else if (key == "output_type")
      o.output_type = automask_output_names().parse(v.get<std::string>(), "output_type");
    else if (key == "include_image_edge") o.include_image_edge = v.get<bool>();
    else throw std::runtime_error("cases.json: unknown option " + key);
  }
  return o;
}

class Automask : public ::testing::Test {
 protected:
  void SetUp() override {
    NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
    const std::string ref = golden_dir() + "/automask.ref.pt";
    if (!std::filesystem::exists(ref)) GTEST_SKIP() << "golden file absent: " << ref;
    configure_threads(2);
    ref_ = load_ref_pt(ref);
    std::ifstream f(golden_dir() + "/cases.json");
    cases_ = nlohmann::json::parse(f)["cases"];
    model_ = SamModel::load(shared_path("golden/models/sam_tiny.pth"),
                            SamConfig::from_json(shared_path("golden/models/sam_tiny.json")));
  }
  const at::Tensor& ref(const std::string& key) const {
    auto it = ref_.find(key);
    if (it == ref_.end()) throw std::runtime_error("reference tensor missing: " + key);
    return it->second;
  }
  const nlohmann::json& case_of(const std::string& name) const {
    for (const auto& c : cases_)
      if (c["name"] == name) return c;
    throw std::runtime_error("no golden case " + name);
  }
  at::Tensor image_of(const nlohmann::json& c) const {
    return ref("image." + c["image"].get<std::string>());
  }

  // Every mismatch between our masks and the case's reference masks, one a line;
  // empty when they agree within the stated tolerance.
  std::string compare(const std::string& name, const std::vector<AutoMask>& ours) const {
    const auto& c = case_of(name);
    const int64_t h = c["image_hw"][0], w = c["image_hw"][1];
    const at::Tensor masks = nephroseg::test::unpack_bits(ref(name + ".masks_packed"), h, w);
    const auto dbl = [&](const std::string& k) { return ref(name + "." + k).to(at::kDouble); };
    const at::Tensor bbox = dbl("bbox"), iou = dbl("predicted_iou"),
                     stab = dbl("stability_score"), pts = dbl("point_coords"),
                     crop = dbl("crop_box"), area = ref(name + ".area");
    std::ostringstream err;
    if (static_cast<int64_t>(ours.size()) != masks.size(0)) {
      err << name << ": " << ours.size() << " masks, reference " << masks.size(0) << "\n";
      return err.str();
    }
    int64_t flips_total = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      const AutoMask& m = ours[i];
      const auto at = [&](const char* what) { err << name << " mask " << i << ": " << what; };
      const int64_t flips = m.segmentation.ne(masks[i]).sum().item<int64_t>();
      flips_total += flips;
      if (flips > kMaxFlippedPixels) at("segmentation"), err << " differs in " << flips << " px\n";
      if (std::abs(m.area - area[i].item<int64_t>()) > flips) at("area"), err << "\n";
      for (int k = 0; k < 4; ++k) {
        if (std::abs(m.bbox[k] - bbox[i][k].item<double>()) > (flips > 0 ? 1.0 : 0.0))
          at("bbox"), err << "[" << k << "] " << m.bbox[k] << " vs " << bbox[i][k].item<double>()
                          << "\n";
        if (m.crop_box[k] != crop[i][k].item<double>()) at("crop_box"), err << "\n";
      }
      if (std::abs(m.predicted_iou - iou[i].item<double>()) > kScoreAtol)
        at("predicted_iou"), err << " " << m.predicted_iou << " vs " << iou[i].item<double>() << "\n";
      if (std::abs(m.stability_score - stab[i].item<double>()) > kScoreAtol)
        at("stability_score"), err << " " << m.stability_score << " vs " << stab[i].item<double>()
                                   << "\n";
      for (int k = 0; k < 2; ++k)
        if (std::abs(m.point_coords[k] - pts[i][k].item<double>()) > 1e-9)
          at("point_coords"), err << "\n";
    }
    std::printf("[parity] automask %-22s %3zu masks, %lld flipped px\n", name.c_str(), ours.size(),
                static_cast<long long>(flips_total));
    return err.str();
  }

  std::vector<AutoMask> run(const std::string& name, const AutomaskOptions& o) const {
    return generate_masks(*model_, image_of(case_of(name)), o);
  }

  std::map<std::string, at::Tensor> ref_;
  nlohmann::json cases_;
  std::shared_ptr<SamModel> model_;
};

TEST_F(Automask, EveryGoldenCaseMatchesTheReference) {
  ASSERT_GE(cases_.size(), 8u);
  int64_t non_empty = 0;
  for (const auto& c : cases_) {
    const std::string name = c["name"];
    const AutomaskOptions o = options_from_json(c["options"]);
    const auto ours = run(name, o);
    EXPECT_EQ(compare(name, ours), "") << name;
    non_empty += ours.empty() ? 0 : 1;
    for (const auto& m : ours) EXPECT_GT(m.area, 0) << name;
  }
  // Only synth_single_no_edge is empty (every random-weight mask spans the image);
  // synth_single, its twin with the edge kept, is not.
  EXPECT_EQ(non_empty, static_cast<int64_t>(cases_.size()) - 1);
}

TEST_F(Automask, WholeImageEmbeddingGivenOrNotGivesTheSameMasks) {
  const std::string name = "small_crops";
  const AutomaskOptions o = options_from_json(case_of(name)["options"]);
  const at::Tensor image = image_of(case_of(name));
  const ImageEmbedding e = model_->encode(image);
  int64_t calls = 0, last_total = 0;
  const auto ours = generate_masks(*model_, image, o, &e, [&](int64_t done, int64_t total) {
    ++calls;
    EXPECT_EQ(done, calls);
    last_total = total;
  });
  EXPECT_EQ(compare(name, ours), "");
  EXPECT_EQ(calls, last_total);
  EXPECT_EQ(last_total, 1 + 4);  // 64 points in one batch, then 16 per crop
}

// The comparison can fail: each perturbed option changes the masks it compares.
TEST_F(Automask, PerturbedOptionsAreCaught) {
  struct Perturbation {
    const char* name;
    void (*apply)(AutomaskOptions&);
  };
  const std::vector<std::pair<std::string, Perturbation>> cases = {
      {"synth_default", {"stability_score_thresh", [](AutomaskOptions& o) {
                           o.stability_score_thresh = 0.6;
                         }}},
      {"synth_single", {"output_type best quality", [](AutomaskOptions& o) {
                          o.output_type = AutomaskOutput::kMultiMaskBestQuality;
                        }}},
      {"synth_single", {"include_image_edge", [](AutomaskOptions& o) {
                          o.include_image_edge = false;
                        }}},
      {"synth_min_area", {"min_mask_region_area", [](AutomaskOptions& o) {
                            o.min_mask_region_area = 0;
                          }}},
      {"small_crops", {"crop_nms_thresh", [](AutomaskOptions& o) { o.crop_nms_thresh = 0.3; }}},
      {"tissue_iou_filter", {"box_nms_thresh", [](AutomaskOptions& o) {
                               o.box_nms_thresh = 1.0;
                             }}},
  };
  for (const auto& [name, p] : cases) {
    AutomaskOptions o = options_from_json(case_of(name)["options"]);
    p.apply(o);
    EXPECT_NE(compare(name, run(name, o)), "") << name << " with " << p.name << " changed";
  }
}

}  // namespace
}  // namespace nephroseg::sam

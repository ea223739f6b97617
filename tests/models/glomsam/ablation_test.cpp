// GlomSAM ablation switches (paper Table 4): each row removes exactly its modules
// (keys and parameter counts against the golden full-size key list), and each tiny
// variant trains two steps, saves, reloads from its stored config and predicts.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>

#include "core/module_init.h"
#include "models/glomsam/internal.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/threads.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/io/image.h"
#include "nephroseg/train/glomsam_trainer.h"
#include "support/golden.h"

namespace nephroseg::glomsam {
namespace {
namespace fs = std::filesystem;

const AblationRow kRows[] = {AblationRow::kFull,        AblationRow::kNoBoundaryLoss,
                             AblationRow::kNoRoughMask, AblationRow::kNoPromptGenerator,
                             AblationRow::kNoCnnBranch, AblationRow::kMedSam};

// The key prefixes a row removes, written out from the paper's component list.
std::vector<std::string> removed_prefixes(AblationRow row) {
  switch (row) {
    case AblationRow::kFull:
    case AblationRow::kNoBoundaryLoss: return {};
    case AblationRow::kNoRoughMask: return {"RoughMaskGenerator."};
    case AblationRow::kNoPromptGenerator: return {"image_encoder.prompt_generator."};
    case AblationRow::kNoCnnBranch: return {"image_encoder.cnn_branch.", "image_encoder.fusion_module."};
    case AblationRow::kMedSam:
      return {"RoughMaskGenerator.", "image_encoder.prompt_generator.", "image_encoder.cnn_branch.",
              "image_encoder.fusion_module."};
  }
  return {};
}

bool removed(const std::string& key, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (key.rfind(p, 0) == 0) return true;
  return false;
}

GlomSamConfig row_config(GlomSamConfig c, AblationRow row) {
  c.apply_ablation(row);
  return c;
}

int64_t unique_count(const models::glomsam::GlomSamImpl& m) {
  int64_t n = 0;
  for (const auto& p : m.unique_parameters()) n += p.numel();
  return n;
}

TEST(GlomSamAblation, RowNamesSwitchesAndConfigRoundTrip) {
  EXPECT_EQ(ablation_row_names().parse("no-cnn-branch"), AblationRow::kNoCnnBranch);
  try {
    ablation_row_names().parse("no_unet", "--ablation");
    FAIL() << "an unknown row must be an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--ablation: unknown ablation row 'no_unet'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("no_prompt_generator"), std::string::npos) << msg;
  }
  for (AblationRow row : kRows) {
    const GlomSamConfig c = row_config(GlomSamConfig::tiny(), row);
    ASSERT_TRUE(c.ablation_row().has_value());
    EXPECT_EQ(*c.ablation_row(), row);
    const GlomSamConfig back = GlomSamConfig::from_json_text(c.to_json(), "round trip");
    EXPECT_EQ(back.boundary_loss, c.boundary_loss);
    EXPECT_EQ(back.rough_mask, c.rough_mask);
    EXPECT_EQ(back.prompt_generator, c.prompt_generator);
    EXPECT_EQ(back.cnn_branch, c.cnn_branch);
    // Full-model configs keep the field set they always had.
    EXPECT_EQ(c.to_json_object().contains("cnn_branch"), row != AblationRow::kFull) << ablation_row_names().name(row);
  }
  GlomSamConfig two = GlomSamConfig::tiny();
  two.rough_mask = false;
  two.cnn_branch = false;
  EXPECT_FALSE(two.ablation_row().has_value());
  EXPECT_EQ(two.ablation_label(), "no_rough_mask+no_cnn_branch");
}

TEST(GlomSamAblation, FullSizeKeysAreTheGoldenListMinusTheRemovedParts) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_size_keys.json");
  std::ifstream in(test::shared_path("golden/glomsam/full_size_keys.json"));
  const auto js = nlohmann::ordered_json::parse(in);
  const auto& want = js["glomsam_state_dict"];
  const auto& counts = js["parameter_counts"];
  const int64_t total = counts["total_unique_parameters"].get<int64_t>();
  auto part = [&](const char* name) { return counts[name].get<int64_t>(); };
  const int64_t pg = part("image_encoder.prompt_generator");
  const int64_t cnn = part("image_encoder.cnn_branch.resnet101 (trunk, without fc)") +
                      part("image_encoder.cnn_branch.resnet101.fc") + part("image_encoder.cnn_branch.adapt_conv") +
                      part("image_encoder.fusion_module");
  const int64_t unet = part("RoughMaskGenerator");
  for (AblationRow row : kRows) {
    const std::string name = ablation_row_names().name(row);
    const GlomSamConfig cfg = row_config(GlomSamConfig::official(), row);
    std::shared_ptr<models::glomsam::GlomSamImpl> m;
    {
      at::NoGradGuard no_grad;
      SkipInitGuard skip_init;  // shapes and keys only
      GlobalRngGuard keep_rng;
      m = std::make_shared<models::glomsam::GlomSamImpl>(cfg);
    }
    const checkpoint::StateDict sd = models::glomsam::reference_state_dict(*m);
    const auto prefixes = removed_prefixes(row);
    std::vector<std::string> expected;
    for (auto it = want.begin(); it != want.end(); ++it)
      if (!removed(it.key(), prefixes)) expected.push_back(it.key());
    ASSERT_EQ(sd.keys(), expected) << name;  // same keys, same (official) order
    for (auto it = want.begin(); it != want.end(); ++it) {
      if (removed(it.key(), prefixes)) continue;
      EXPECT_EQ(sd.at(it.key()).sizes(), at::IntArrayRef(it.value()["shape"].get<std::vector<int64_t>>()))
          << name << " " << it.key();
    }
    int64_t want_count = total;
    if (!cfg.prompt_generator) want_count -= pg;
    if (!cfg.cnn_branch) want_count -= cnn;
    if (!cfg.rough_mask) want_count -= unet;
    EXPECT_EQ(unique_count(*m), want_count) << name;
  }
}

TEST(GlomSamAblation, MedSamRowHasExactlyMedSamsKeys) {
  NEPHRO_REQUIRE_SHARED("golden/models/full_state_dict_keys.json");
  std::ifstream in(test::shared_path("golden/models/full_state_dict_keys.json"));
  const auto js = nlohmann::ordered_json::parse(in);
  std::set<std::string> sam_keys;
  for (auto it = js["sam_vit_b"].begin(); it != js["sam_vit_b"].end(); ++it) sam_keys.insert(it.key());
  std::shared_ptr<models::glomsam::GlomSamImpl> m;
  {
    at::NoGradGuard no_grad;
    SkipInitGuard skip_init;
    GlobalRngGuard keep_rng;
    m = std::make_shared<models::glomsam::GlomSamImpl>(row_config(GlomSamConfig::official(), AblationRow::kMedSam));
  }
  const auto keys = models::glomsam::reference_state_dict(*m).keys();
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), sam_keys);
}

// Synthetic 160x160 images with one or two bright ellipses (the tiny input size).
void make_data(const std::string& dir, int count, uint32_t seed) {
  fs::create_directories(dir + "/images");
  fs::create_directories(dir + "/masks");
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pos(40, 120), ax(10, 25), noise(0, 40);
  for (int i = 0; i < count; ++i) {
    cv::Mat mask = cv::Mat::zeros(160, 160, CV_8UC1);
    cv::ellipse(mask, cv::Point(pos(rng), pos(rng)), cv::Size(ax(rng), ax(rng)), 30.0 * i, 0, 360, cv::Scalar(255),
                cv::FILLED);
    cv::Mat img(160, 160, CV_8UC3);
    for (int y = 0; y < 160; ++y)
      for (int x = 0; x < 160; ++x) {
        const int base = (mask.at<uchar>(y, x) ? 170 : 60) + noise(rng);
        img.at<cv::Vec3b>(y, x) = cv::Vec3b(base, base / 2, base);
      }
    const std::string name = "s" + std::to_string(i) + ".png";
    io::write_png(dir + "/images/" + name, img);
    io::write_png(dir + "/masks/" + name, mask);
  }
}

TEST(GlomSamAblation, EachTinyVariantTrainsSavesReloadsAndPredicts) {
  configure_threads(2);
  const std::string data = test::temp_dir("ablation_data");
  make_data(data + "/train", 4, 3);
  make_data(data + "/val", 1, 4);
  const cv::Mat probe = io::read_image_rgb(data + "/val/images/s0.png");
  // Full tiny model: its unique parameters per removable part.
  const auto full = GlomSamModel::create(GlomSamConfig::tiny(), 1);
  std::map<std::string, int64_t> part;
  int64_t full_count = 0;
  for (const auto& [key, t] : internal::module(*full).unique_named_parameters()) {
    full_count += t.numel();
    for (const char* p : {"RoughMaskGenerator.", "image_encoder.prompt_generator.", "image_encoder.cnn_branch.",
                          "image_encoder.fusion_module."})
      if (key.rfind(p, 0) == 0) part[p] += t.numel();
  }
  const std::set<std::string> full_keys = [&] {
    const auto k = models::glomsam::reference_state_dict(internal::module(*full)).keys();
    return std::set<std::string>(k.begin(), k.end());
  }();
  for (AblationRow row : kRows) {
    const std::string name = ablation_row_names().name(row);
    SCOPED_TRACE(name);
    train::GlomSamTrainOptions o;
    o.images_dir = data + "/train/images";
    o.masks_dir = data + "/train/masks";
    o.val_images_dir = data + "/val/images";
    o.val_masks_dir = data + "/val/masks";
    o.out_dir = test::temp_dir("ablation_" + name);
    o.config = row_config(GlomSamConfig::tiny(), row);
    o.epochs = 1;
    o.batch_size = 2;
    o.max_batches_per_epoch = 2;  // two optimiser steps
    o.box_jitter = 3;
    o.seed = 5;
    o.patience = 0;
    const train::TrainSummary s = train::train_glomsam(o);
    EXPECT_EQ(s.steps, 2);
    ASSERT_EQ(s.history.size(), 1u);
    if (o.config.boundary_loss) {
      EXPECT_GT(s.history[0].train_bdou, 0.0);
    } else {
      EXPECT_EQ(s.history[0].train_bdou, 0.0);  // never computed
      EXPECT_NEAR(s.history[0].train_loss, s.history[0].train_bce + s.history[0].train_dice, 1e-6);
    }
    // The checkpoint holds the switches; predict-style loading rebuilds the same model.
    const auto stored = GlomSamModel::stored_config(s.last_checkpoint);
    ASSERT_TRUE(stored.has_value());
    ASSERT_TRUE(stored->ablation_row().has_value());
    EXPECT_EQ(*stored->ablation_row(), row);
    const auto model = GlomSamModel::load(s.last_checkpoint, *stored);
    const checkpoint::StateDict file = checkpoint::load_state_dict(s.last_checkpoint);
    const auto prefixes = removed_prefixes(row);
    std::set<std::string> expected;
    for (const auto& k : full_keys)
      if (!removed(k, prefixes)) expected.insert(k);
    const auto fk = file.keys();
    EXPECT_EQ(std::set<std::string>(fk.begin(), fk.end()), expected);
    int64_t want = full_count;
    for (const auto& p : prefixes) want -= part[p];
    EXPECT_EQ(unique_count(internal::module(*model)), want);
    // A model of another row does not take this file (strict keys).
    if (row != AblationRow::kFull && row != AblationRow::kNoBoundaryLoss) {
      EXPECT_THROW(GlomSamModel::load(s.last_checkpoint, GlomSamConfig::tiny()), Error);
    }
    PredictOptions po;
    po.box = Box{30.f, 30.f, 130.f, 130.f};
    const PredictResult r = model->predict(probe, po);
    ASSERT_EQ(r.mask.dim(), 2);
    EXPECT_EQ(r.mask.size(0), 160);
    EXPECT_EQ(r.mask.size(1), 160);
    EXPECT_TRUE(at::isfinite(r.logits).all().item<bool>());
    const PredictResult a = model->predict(probe);  // automatic box (whole tile without a UNet)
    EXPECT_EQ(a.boxes.size(), 0u);
    EXPECT_TRUE(at::isfinite(a.logits).all().item<bool>());
  }
}

}  // namespace
}  // namespace nephroseg::glomsam

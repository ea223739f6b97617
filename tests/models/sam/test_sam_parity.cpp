// Parity of the SAM port against golden/models/sam_tiny.ref.pt (outputs of the
// official segment-anything code on a tiny random-weight model; see that folder's
// README). Every reference tensor is reproduced: PIL resize (exact), preprocessing,
// patch embed, every encoder block, image embeddings, dense PE, six prompt sets
// (sparse/dense embeddings, low-res logits, IoU, mask logits, masks), the p0 decoder
// intermediates and the batched two-box query.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "models/sam/internal.h"
#include "nephroseg/core/threads.h"
#include "nephroseg/sam/sam.h"
#include "support/golden.h"

namespace nephroseg::sam {
namespace {

using nephroseg::test::load_ref_pt;
using nephroseg::test::max_abs_diff;
using nephroseg::test::shared_path;

// Same LibTorch ops in the same order as the reference: float32 noise only.
constexpr double kAtol = 1e-5;

class SamParity : public ::testing::Test {
 protected:
  void SetUp() override {
    NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.ref.pt");
    NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
    configure_threads(2);
    ref_ = load_ref_pt(shared_path("golden/models/sam_tiny.ref.pt"));
    config_ = SamConfig::from_json(shared_path("golden/models/sam_tiny.json"));
    model_ = SamModel::load(shared_path("golden/models/sam_tiny.pth"), config_);
  }
  const at::Tensor& ref(const std::string& key) {
    auto it = ref_.find(key);
    if (it == ref_.end()) throw std::runtime_error("reference tensor missing: " + key);
    return it->second;
  }
  bool has(const std::string& key) const { return ref_.count(key) != 0; }
  SamImpl& sam() { return internal::module(*model_); }

  // Boolean masks may differ only where the reference logit is within 1e-3 of 0.
  void expect_masks(const at::Tensor& masks, const std::string& prefix) {
    const at::Tensor expected = ref(prefix + ".masks");
    ASSERT_EQ(masks.sizes(), expected.sizes()) << prefix;
    const at::Tensor differ = masks.ne(expected);
    const at::Tensor near_zero = ref(prefix + ".mask_logits").abs() <= 1e-3;
    const int64_t bad = (differ & ~near_zero).sum().item<int64_t>();
    EXPECT_EQ(bad, 0) << prefix << ".masks: " << bad << " pixel(s) differ away from the boundary";
    std::printf("[parity] %-45s flips %lld (all at |logit| <= 1e-3: %s)\n",
                (prefix + ".masks").c_str(), static_cast<long long>(differ.sum().item<int64_t>()),
                bad == 0 ? "yes" : "no");
  }
  void expect_close(const at::Tensor& actual, const std::string& key, double atol = kAtol) {
    const at::Tensor& expected = ref(key);
    EXPECT_TENSOR_CLOSE(actual, expected, atol, key);
    if (actual.sizes() == expected.sizes()) {
      std::printf("[parity] %-45s max |diff| %.3g\n", key.c_str(), max_abs_diff(actual, expected));
    }
  }

  std::map<std::string, at::Tensor> ref_;
  SamConfig config_;
  std::shared_ptr<SamModel> model_;
};

TEST_F(SamParity, ResizeIsPillowExact) {
  const at::Tensor resized = resize_for_model(ref("image_rgb_u8"), config_);
  ASSERT_EQ(resized.sizes(), ref("resized_image_u8").sizes());
  const int64_t differing = resized.ne(ref("resized_image_u8")).sum().item<int64_t>();
  EXPECT_EQ(differing, 0) << "bytes differing from PIL's bilinear resize";
  EXPECT_EQ(preprocess_shape(77, 103, config_.img_size), (std::array<int64_t, 2>{120, 160}));
  EXPECT_EQ(ref("input_size")[0].item<int64_t>(), resized.size(0));
  EXPECT_EQ(ref("input_size")[1].item<int64_t>(), resized.size(1));
}

TEST_F(SamParity, EncoderAndEveryBlock) {
  c10::InferenceMode guard;
  const at::Tensor input = model_input(sam(), ref("resized_image_u8"));
  expect_close(input, "preprocessed");
  std::vector<at::Tensor> debug;
  const at::Tensor emb = sam().image_encoder->forward(ref("preprocessed"), &debug);
  ASSERT_EQ(debug.size(), static_cast<size_t>(1 + config_.encoder_depth));
  expect_close(debug[0], "debug.encoder.patch_embed");
  for (int64_t i = 0; i < config_.encoder_depth; ++i) {
    expect_close(debug[1 + i], "debug.encoder.block" + std::to_string(i));
  }
  expect_close(emb, "image_embeddings");
  expect_close(sam().prompt_encoder->get_dense_pe(), "dense_pe");

  // The public path (uint8 image in) gives the same embedding.
  const ImageEmbedding e = model_->encode(ref("image_rgb_u8"));
  EXPECT_TENSOR_CLOSE(e.embedding, ref("image_embeddings"), kAtol, "encode().embedding");
  EXPECT_EQ(e.original_size, (std::array<int64_t, 2>{77, 103}));
  EXPECT_EQ(e.input_size, (std::array<int64_t, 2>{120, 160}));
}

// The chunked inference attention (used for >= 1024 tokens, i.e. only the global
// blocks of full-size models) forced on every block of the tiny model.
TEST_F(SamParity, ChunkedAttentionPathMatches) {
  c10::InferenceMode guard;
  const int64_t saved = chunked_attention_min_tokens();
  chunked_attention_min_tokens() = 0;
  std::vector<at::Tensor> debug;
  const at::Tensor emb = sam().image_encoder->forward(ref("preprocessed"), &debug);
  chunked_attention_min_tokens() = saved;
  for (int64_t i = 0; i < config_.encoder_depth; ++i) {
    expect_close(debug[1 + i], "debug.encoder.block" + std::to_string(i));
  }
  expect_close(emb, "image_embeddings");
}

// With autograd on (GlomSAM training), blocks take the reference code path.
TEST_F(SamParity, AutogradPathMatches) {
  std::vector<at::Tensor> debug;
  const at::Tensor emb = sam().image_encoder->forward(ref("preprocessed"), &debug);
  for (int64_t i = 0; i < config_.encoder_depth; ++i) {
    expect_close(debug[1 + i].detach(), "debug.encoder.block" + std::to_string(i));
  }
  expect_close(emb.detach(), "image_embeddings");
}

// Inference attention paths against the reference path on a larger non-square grid
// (bands of query rows that do not divide H; windows with padding on both axes).
TEST(SamInferencePaths, MatchReferenceOnNonSquareGrid) {
  at::manual_seed(5);
  Block global(48, 3, 4.0, true, 1e-6, true, /*window_size=*/0, std::make_pair(int64_t{37}, int64_t{23}));
  Block windowed(48, 3, 4.0, true, 1e-6, true, /*window_size=*/7, std::make_pair(int64_t{37}, int64_t{23}));
  for (auto& p : global->parameters()) p.data().normal_(0, 0.3);
  for (auto& p : windowed->parameters()) p.data().normal_(0, 0.3);
  const at::Tensor x = at::randn({1, 37, 23, 48});
  const at::Tensor ref_global = global->forward(x).detach();  // autograd on: reference path
  const at::Tensor ref_windowed = windowed->forward(x).detach();
  c10::InferenceMode guard;
  const int64_t saved = chunked_attention_min_tokens();
  chunked_attention_min_tokens() = 0;
  const at::Tensor fast_global = global->forward(x);
  chunked_attention_min_tokens() = saved;
  EXPECT_TENSOR_CLOSE(fast_global, ref_global, 1e-5, "chunked global attention");
  EXPECT_TENSOR_CLOSE(windowed->forward(x), ref_windowed, 1e-5, "windowed inference block");
}

TEST_F(SamParity, EveryPromptSet) {
  ImageEmbedding e;
  e.embedding = ref("image_embeddings");
  e.original_size = {ref("original_size")[0].item<int64_t>(), ref("original_size")[1].item<int64_t>()};
  e.input_size = {ref("input_size")[0].item<int64_t>(), ref("input_size")[1].item<int64_t>()};
  const std::vector<std::string> sets = {
      "p0_single_point_multimask", "p1_pos_neg_points", "p2_box", "p3_box_and_point",
      "p4_mask_and_points",        "p5_ignored_point_label_minus1"};
  for (const std::string& p : sets) {
    SCOPED_TRACE(p);
    const bool multimask = ref(p + ".in.multimask_output").item<bool>();
    SamPrompt prompt;
    prompt.multimask = multimask;
    at::Tensor coords, labels, boxes, mask;
    {
      c10::InferenceMode guard;
      if (has(p + ".in.point_coords")) {
        const at::Tensor pc = ref(p + ".in.point_coords");  // [N, 2]
        const at::Tensor pl = ref(p + ".in.point_labels");  // [N]
        coords = apply_coords(pc.unsqueeze(0), e.original_size, e.input_size, config_);
        expect_close(coords, p + ".model.point_coords", 0.0);
        labels = pl.unsqueeze(0);
        for (int64_t i = 0; i < pc.size(0); ++i) {
          prompt.points.push_back({pc[i][0].item<float>(), pc[i][1].item<float>()});
          prompt.labels.push_back(pl[i].item<int>());
        }
      }
      if (has(p + ".in.box")) {
        const at::Tensor b = ref(p + ".in.box");  // [4]
        boxes = apply_coords(b.view({1, 2, 2}), e.original_size, e.input_size, config_).view({1, 4});
        expect_close(boxes, p + ".model.box", 0.0);
        prompt.box = std::array<float, 4>{b[0].item<float>(), b[1].item<float>(),
                                          b[2].item<float>(), b[3].item<float>()};
      }
      if (has(p + ".in.mask_input")) {
        prompt.mask_input = ref(p + ".in.mask_input");  // [1, 40, 40]
        mask = prompt.mask_input.unsqueeze(0);
      }
      MaskDecoderDebug dbg;
      const DecodeOutput out = decode(sam(), e.embedding, coords, labels, boxes, mask, multimask,
                                      e.input_size, e.original_size, &dbg);
      expect_close(out.sparse, p + ".sparse_embeddings");
      expect_close(out.dense, p + ".dense_embeddings");
      expect_close(out.low_res_logits, p + ".low_res_logits");
      expect_close(out.iou, p + ".iou");
      expect_close(out.mask_logits, p + ".mask_logits");
      expect_masks(out.masks, p);
      const std::string d = "debug." + p + ".decoder.";
      if (has(d + "tokens_out")) {
        expect_close(dbg.tokens_out, d + "tokens_out");
        expect_close(dbg.image_out, d + "image_out");
        expect_close(dbg.upscaled_embedding, d + "upscaled_embedding");
        expect_close(dbg.all_mask_logits, d + "all_mask_logits");
        expect_close(dbg.all_iou, d + "all_iou");
      }
    }
    // The public, validated path gives the same result without the batch dimension.
    const SamResult r = model_->predict(e, prompt);
    EXPECT_TENSOR_CLOSE(r.low_res_logits, ref(p + ".low_res_logits")[0], kAtol, p + " predict()");
    EXPECT_TENSOR_CLOSE(r.iou, ref(p + ".iou")[0], kAtol, p + " predict().iou");
    EXPECT_TENSOR_CLOSE(r.mask_logits, ref(p + ".mask_logits")[0], kAtol, p + " predict().mask_logits");
    EXPECT_EQ(r.masks.sizes(), ref(p + ".masks")[0].sizes());
  }
}

TEST_F(SamParity, BatchOfTwoBoxes) {
  ImageEmbedding e = model_->encode(ref("image_rgb_u8"));
  {
    c10::InferenceMode guard;
    const at::Tensor model_boxes =
        apply_coords(ref("b0_two_boxes.in.boxes").view({-1, 2, 2}), e.original_size, e.input_size,
                     config_, /*torch_variant=*/true)
            .view({-1, 4});
    expect_close(model_boxes, "b0_two_boxes.model.boxes", 0.0);
  }
  const SamResult r = model_->predict_boxes(e, ref("b0_two_boxes.in.boxes"), /*multimask=*/true);
  expect_close(r.low_res_logits, "b0_two_boxes.low_res_logits");
  expect_close(r.iou, "b0_two_boxes.iou");
  expect_close(r.mask_logits, "b0_two_boxes.mask_logits");
  EXPECT_EQ(r.masks.sizes(), ref("b0_two_boxes.mask_logits").sizes());
}

}  // namespace
}  // namespace nephroseg::sam

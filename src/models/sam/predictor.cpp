#include "models/sam/predictor.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/module_init.h"
#include "models/sam/internal.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/resize.h"
#include "nephroseg/core/skimage_resize.h"

namespace nephroseg::sam {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

// Ref: transforms.py::ResizeLongestSide.get_preprocess_shape
std::array<int64_t, 2> preprocess_shape(int64_t h, int64_t w, int64_t long_side) {
  const double scale = static_cast<double>(long_side) / static_cast<double>(std::max(h, w));
  const double new_h = static_cast<double>(h) * scale;
  const double new_w = static_cast<double>(w) * scale;
  return {static_cast<int64_t>(new_h + 0.5), static_cast<int64_t>(new_w + 0.5)};
}

at::Tensor as_rgb_u8(const at::Tensor& image) {
  NEPHRO_CHECK(image.defined(), "SAM: undefined image tensor");
  NEPHRO_CHECK(image.scalar_type() == at::kByte, "SAM: image must be uint8, got ",
               image.scalar_type());
  NEPHRO_CHECK(image.device().is_cpu(), "SAM: image must be a CPU tensor");
  NEPHRO_CHECK((image.dim() == 3 && image.size(2) == 3) || image.dim() == 2,
               "SAM: image must be [H, W, 3] RGB or [H, W] grey, got shape ", image.sizes());
  NEPHRO_CHECK(image.size(0) > 0 && image.size(1) > 0, "SAM: empty image ", image.sizes());
  if (image.dim() == 2) return image.unsqueeze(2).expand({-1, -1, 3}).contiguous();
  return image.contiguous();
}


at::Tensor resize_for_model(const at::Tensor& image, const SamConfig& config) {
  const at::Tensor rgb = as_rgb_u8(image);
  if (config.preprocess == SamPreprocess::kMedSam) {
    // MedSAM_Inference.py: transform.resize(img, (1024, 1024), order=3,
    // preserve_range=True, anti_aliasing=True).astype(np.uint8)
    return skimage_resize_cubic(rgb, config.img_size, config.img_size);
  }
  const auto [nh, nw] = preprocess_shape(rgb.size(0), rgb.size(1), config.img_size);
  return pil_resize(rgb, nh, nw, PilFilter::kBilinear);  // [h, w, 3]
}

at::Tensor model_input(SamImpl& sam, const at::Tensor& resized) {
  const at::Tensor chw = resized.permute({2, 0, 1}).contiguous().unsqueeze(0);  // [1, 3, h, w]
  if (sam.config.preprocess == SamPreprocess::kMedSam) {
    // Ref: MedSAM_Inference.py: (x - min) / clip(max - min, 1e-8), in float64.
    const at::Tensor d = chw.to(at::kDouble);
    const double lo = d.min().item<double>(), hi = d.max().item<double>();
    return ((d - lo) / std::max(hi - lo, 1e-8)).to(at::kFloat);
  }
  return sam.preprocess(chw);  // [1, 3, S, S]
}

// Ref: transforms.py::ResizeLongestSide.apply_coords
at::Tensor apply_coords(const at::Tensor& coords, std::array<int64_t, 2> original_size,
                        std::array<int64_t, 2> input_size, const SamConfig& config,
                        bool torch_variant) {
  const bool medsam = config.preprocess == SamPreprocess::kMedSam;
  at::Tensor c = coords.to(torch_variant && !medsam ? at::kFloat : at::kDouble).clone();
  at::Tensor x = c.select(-1, 0), y = c.select(-1, 1);
  if (medsam) {
    const double s = static_cast<double>(config.img_size);
    x.copy_(x / static_cast<double>(original_size[1]) * s);
    y.copy_(y / static_cast<double>(original_size[0]) * s);
  } else {
    x.mul_(static_cast<double>(input_size[1]) / static_cast<double>(original_size[1]));
    y.mul_(static_cast<double>(input_size[0]) / static_cast<double>(original_size[0]));
  }
  return c.to(at::kFloat);
}

// Ref: predictor.py::SamPredictor.predict_torch (+ MedSAM_Inference.py::medsam_inference)
DecodeOutput decode(SamImpl& sam, const at::Tensor& embedding, const at::Tensor& coords,
                    const at::Tensor& labels, const at::Tensor& boxes,
                    const at::Tensor& mask_input, bool multimask,
                    std::array<int64_t, 2> input_size, std::array<int64_t, 2> original_size,
                    MaskDecoderDebug* debug) {
  DecodeOutput out;
  std::tie(out.sparse, out.dense) = sam.prompt_encoder->forward(coords, labels, boxes, mask_input);
  const at::Tensor dense_pe = sam.prompt_encoder->get_dense_pe();
  std::tie(out.low_res_logits, out.iou) =
      sam.mask_decoder->forward(embedding, dense_pe, out.sparse, out.dense, multimask, debug);
  if (sam.config.preprocess == SamPreprocess::kMedSam) {
    const at::Tensor prob = at::upsample_bilinear2d(at::sigmoid(out.low_res_logits),
                                                    {original_size[0], original_size[1]},
                                                    /*align_corners=*/false);
    out.masks = prob > 0.5;
    out.mask_logits = at::logit(prob);
  } else {
    out.mask_logits = sam.postprocess_masks(out.low_res_logits, input_size, original_size);
    out.masks = out.mask_logits > sam.config.mask_threshold;
  }
  return out;
}

// ----------------------------------------------------------------------------------
// Public API
// ----------------------------------------------------------------------------------

SamModel::SamModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SamModel::~SamModel() = default;

const SamConfig& SamModel::config() const { return impl_->sam->config; }

Precision SamModel::precision() const { return impl_->precision; }

std::shared_ptr<SamModel> SamModel::random(const SamConfig& config, uint64_t seed,
                                           Precision precision) {
  at::manual_seed(seed);
  auto impl = std::make_unique<Impl>();
  impl->sam = Sam(config);
  impl->sam->eval();
  impl->precision = apply_model_precision(*impl->sam->image_encoder, precision);
  return std::shared_ptr<SamModel>(new SamModel(std::move(impl)));
}

std::shared_ptr<SamModel> SamModel::load(const std::string& checkpoint, const SamConfig& config,
                                         Precision precision) {
  NEPHRO_CHECK(std::filesystem::is_regular_file(checkpoint), "SAM checkpoint not found: ",
               checkpoint);
  auto impl = std::make_unique<Impl>();
  {
    // Every weight comes from the checkpoint: skip the random initialisation of the
    // big layers, and leave the caller's random stream as it was (the small layers
    // and the positional-encoding buffer still draw while being built).
    c10::NoGradGuard no_grad;
    SkipInitGuard skip_init;
    GlobalRngGuard keep_rng;
    impl->sam = Sam(config);
  }
  {
    // Dropped before the precision conversion: the parameters share its float32
    // storages, which are then freed layer by layer as the encoder is converted.
    const checkpoint::StateDict sd = checkpoint::load_state_dict(checkpoint);
    checkpoint::bind_state_dict(*impl->sam, sd, checkpoint + " (as SAM '" + config.name + "')");
  }
  impl->sam->eval();
  impl->precision = apply_model_precision(*impl->sam->image_encoder, precision);
  return std::shared_ptr<SamModel>(new SamModel(std::move(impl)));
}

ImageEmbedding SamModel::encode(const at::Tensor& image) const {
  const auto t0 = std::chrono::steady_clock::now();
  c10::InferenceMode guard;
  SamImpl& sam = *impl_->sam;
  const at::Tensor rgb = as_rgb_u8(image);
  const at::Tensor resized = resize_for_model(rgb, sam.config);
  ImageEmbedding out;
  out.original_size = {rgb.size(0), rgb.size(1)};
  out.input_size = {resized.size(0), resized.size(1)};
  out.embedding = sam.image_encoder->forward(model_input(sam, resized));
  out.encode_seconds = seconds_since(t0);
  return out;
}

int64_t SamResult::best_index() const {
  NEPHRO_CHECK(iou.defined() && iou.numel() > 0, "SamResult::best_index: no masks");
  const at::Tensor first = iou.dim() == 2 ? iou[0] : iou;
  return first.argmax().item<int64_t>();
}

namespace {

void check_embedding(const ImageEmbedding& e, const SamConfig& c) {
  NEPHRO_CHECK(e.embedding.defined(), "SAM predict: the image embedding is empty (call encode)");
  const int64_t g = c.grid_size();
  NEPHRO_CHECK(e.embedding.dim() == 4 && e.embedding.size(0) == 1 &&
                   e.embedding.size(1) == c.prompt_embed_dim && e.embedding.size(2) == g &&
                   e.embedding.size(3) == g,
               "SAM predict: image embedding has shape ", e.embedding.sizes(), ", expected [1, ",
               c.prompt_embed_dim, ", ", g, ", ", g, "] for model '", c.name, "'");
  NEPHRO_CHECK(e.original_size[0] > 0 && e.original_size[1] > 0 && e.input_size[0] > 0 &&
                   e.input_size[1] > 0,
               "SAM predict: image embedding has no image size");
}

void check_box(const std::array<float, 4>& b, const std::array<int64_t, 2>& hw, const char* what) {
  const double W = static_cast<double>(hw[1]), H = static_cast<double>(hw[0]);
  for (float v : b) NEPHRO_CHECK(std::isfinite(v), what, ": box coordinates must be finite");
  NEPHRO_CHECK(b[0] <= b[2] && b[1] <= b[3], what, ": box (", b[0], ", ", b[1], ", ", b[2], ", ",
               b[3], ") must satisfy x0 <= x1 and y0 <= y1");
  NEPHRO_CHECK(b[0] >= 0 && b[1] >= 0 && b[2] <= W && b[3] <= H, what, ": box (", b[0], ", ", b[1],
               ", ", b[2], ", ", b[3], ") lies outside the image [0, ", W, "] x [0, ", H, "]");
}

SamResult to_result(DecodeOutput&& d, bool drop_batch) {
  SamResult r;
  if (drop_batch) {
    r.masks = d.masks[0];
    r.iou = d.iou[0];
    r.low_res_logits = d.low_res_logits[0];
    r.mask_logits = d.mask_logits[0];
  } else {
    r.masks = d.masks;
    r.iou = d.iou;
    r.low_res_logits = d.low_res_logits;
    r.mask_logits = d.mask_logits;
  }
  return r;
}

}  // namespace

SamResult SamModel::predict(const ImageEmbedding& e, const SamPrompt& p) const {
  const auto t0 = std::chrono::steady_clock::now();
  SamImpl& sam = *impl_->sam;
  const SamConfig& c = sam.config;
  check_embedding(e, c);
  const bool has_mask = p.mask_input.defined();
  NEPHRO_CHECK(!p.points.empty() || p.box || has_mask,
               "SAM predict: no prompt given (need at least one point, a box or a mask input)");
  NEPHRO_CHECK(p.labels.size() == p.points.size(), "SAM predict: ", p.points.size(),
               " point(s) but ", p.labels.size(), " label(s)");
  const bool medsam = c.preprocess == SamPreprocess::kMedSam;
  if (medsam) {
    NEPHRO_CHECK(p.box && p.points.empty() && !has_mask,
                 "SAM predict: MedSAM takes a box prompt only (no points, no mask input)");
    NEPHRO_CHECK(!p.multimask, "SAM predict: MedSAM predicts a single mask (multimask is off)");
  }
  const double W = static_cast<double>(e.original_size[1]);
  const double H = static_cast<double>(e.original_size[0]);
  for (size_t i = 0; i < p.points.size(); ++i) {
    const float x = p.points[i][0], y = p.points[i][1];
    NEPHRO_CHECK(std::isfinite(x) && std::isfinite(y) && x >= 0 && y >= 0 && x <= W && y <= H,
                 "SAM predict: point ", i, " (", x, ", ", y, ") lies outside the image [0, ", W,
                 "] x [0, ", H, "]");
    NEPHRO_CHECK(p.labels[i] >= -1 && p.labels[i] <= 1, "SAM predict: point ", i, " has label ",
                 p.labels[i], " (expected 1 foreground, 0 background or -1 ignored)");
  }
  if (p.box) check_box(*p.box, e.original_size, "SAM predict");

  c10::InferenceMode guard;
  at::Tensor coords, labels, boxes, mask;
  if (!p.points.empty()) {
    std::vector<float> flat;
    for (const auto& pt : p.points) flat.insert(flat.end(), pt.begin(), pt.end());
    const int64_t n = static_cast<int64_t>(p.points.size());
    coords = apply_coords(at::tensor(flat).view({1, n, 2}), e.original_size, e.input_size, c);
    labels = at::tensor(std::vector<int>(p.labels.begin(), p.labels.end()), at::kInt).view({1, n});
  }
  if (p.box) {
    const auto& b = *p.box;
    boxes = apply_coords(at::tensor(std::vector<float>(b.begin(), b.end())).view({1, 2, 2}),
                         e.original_size, e.input_size, c)
                .view({1, 4});
  }
  if (has_mask) {
    const int64_t L = c.low_res_size();
    const at::Tensor m = p.mask_input;
    NEPHRO_CHECK((m.dim() == 3 && m.size(0) == 1 && m.size(1) == L && m.size(2) == L) ||
                     (m.dim() == 2 && m.size(0) == L && m.size(1) == L),
                 "SAM predict: mask_input has shape ", m.sizes(), ", expected [1, ", L, ", ", L,
                 "] low-res logits");
    mask = m.to(at::kFloat).reshape({1, 1, L, L});
  }
  SamResult r = to_result(decode(sam, e.embedding, coords, labels, boxes, mask, p.multimask,
                                 e.input_size, e.original_size),
                          /*drop_batch=*/true);
  r.seconds = seconds_since(t0);
  return r;
}

SamResult SamModel::predict_boxes(const ImageEmbedding& e, const at::Tensor& boxes_in,
                                  bool multimask) const {
  const auto t0 = std::chrono::steady_clock::now();
  SamImpl& sam = *impl_->sam;
  const SamConfig& c = sam.config;
  check_embedding(e, c);
  NEPHRO_CHECK(boxes_in.defined() && boxes_in.dim() == 2 && boxes_in.size(1) == 4 &&
                   boxes_in.size(0) > 0,
               "SAM predict_boxes: boxes must be [B, 4] (x0, y0, x1, y1) with B >= 1, got ",
               boxes_in.defined() ? boxes_in.sizes() : at::IntArrayRef{});
  NEPHRO_CHECK(!(multimask && c.preprocess == SamPreprocess::kMedSam),
               "SAM predict_boxes: MedSAM predicts a single mask (multimask is off)");
  const at::Tensor b32 = boxes_in.to(at::kFloat).contiguous();
  for (int64_t i = 0; i < b32.size(0); ++i) {
    const float* r = b32[i].data_ptr<float>();
    check_box({r[0], r[1], r[2], r[3]}, e.original_size, "SAM predict_boxes");
  }
  c10::InferenceMode guard;
  const at::Tensor boxes =
      apply_coords(b32.view({-1, 2, 2}), e.original_size, e.input_size, c, /*torch_variant=*/true)
          .view({-1, 4});
  SamResult r = to_result(decode(sam, e.embedding, {}, {}, boxes, {}, multimask, e.input_size,
                                 e.original_size),
                          /*drop_batch=*/false);
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace nephroseg::sam

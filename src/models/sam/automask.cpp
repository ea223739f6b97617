// SAM's automatic mask generator: point grids over the image and its crops, batched
// decoder passes, quality filters, NMS within and across crops, small-region cleanup.
// Ref: segment_anything/automatic_mask_generator.py, segment_anything/utils/amg.py
// (dca509f); output_type and include_image_edge from ksugar/MobileSAM 41ac534.
#include "nephroseg/sam/automask.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "models/sam/amg.h"
#include "models/sam/internal.h"
#include "models/sam/predictor.h"
#include "nephroseg/core/error.h"

namespace nephroseg::sam {

const EnumNames<AutomaskOutput>& automask_output_names() {
  static const EnumNames<AutomaskOutput> t(
      "automask output type",
      {{AutomaskOutput::kSingleMask, "Single mask", {"Single Mask"}},
       {AutomaskOutput::kMultiMaskAll, "Multi-mask (all)", {}},
       {AutomaskOutput::kMultiMaskLargest, "Multi-mask (largest)", {}},
       {AutomaskOutput::kMultiMaskSmallest, "Multi-mask (smallest)", {}},
       {AutomaskOutput::kMultiMaskBestQuality, "Multi-mask (best quality)", {}}});
  return t;
}

AutomaskOptions AutomaskOptions::segment_anything() {
  AutomaskOptions o;
  o.output_type = AutomaskOutput::kMultiMaskBestQuality;
  o.include_image_edge = true;
  return o;
}

void AutomaskOptions::validate() const {
  const auto in_unit = [](double v) { return std::isfinite(v) && v >= 0.0 && v <= 1.0; };
  NEPHRO_CHECK(points_per_side >= 1 && points_per_side <= kMaxPointsPerSide,
               "automask: points_per_side must lie in [1, ", kMaxPointsPerSide, "], got ",
               points_per_side);
  NEPHRO_CHECK(points_per_batch >= 1 && points_per_batch <= kMaxPointsPerBatch,
               "automask: points_per_batch must lie in [1, ", kMaxPointsPerBatch, "], got ",
               points_per_batch);
  NEPHRO_CHECK(std::isfinite(pred_iou_thresh), "automask: pred_iou_thresh must be finite");
  NEPHRO_CHECK(std::isfinite(stability_score_thresh),
               "automask: stability_score_thresh must be finite");
  NEPHRO_CHECK(std::isfinite(stability_score_offset) && stability_score_offset >= 0.0,
               "automask: stability_score_offset must be finite and >= 0, got ",
               stability_score_offset);
  NEPHRO_CHECK(in_unit(box_nms_thresh), "automask: box_nms_thresh must lie in [0, 1], got ",
               box_nms_thresh);
  NEPHRO_CHECK(crop_n_layers >= 0 && crop_n_layers <= 6,
               "automask: crop_n_layers must lie in [0, 6], got ", crop_n_layers);
  NEPHRO_CHECK(in_unit(crop_nms_thresh), "automask: crop_nms_thresh must lie in [0, 1], got ",
               crop_nms_thresh);
  NEPHRO_CHECK(std::isfinite(crop_overlap_ratio) && crop_overlap_ratio >= 0.0 &&
                   crop_overlap_ratio < 1.0,
               "automask: crop_overlap_ratio must lie in [0, 1), got ", crop_overlap_ratio);
  NEPHRO_CHECK(crop_n_points_downscale_factor >= 1,
               "automask: crop_n_points_downscale_factor must be >= 1, got ",
               crop_n_points_downscale_factor);
  int64_t last = points_per_side;
  for (int i = 0; i < crop_n_layers; ++i) last /= crop_n_points_downscale_factor;
  NEPHRO_CHECK(last >= 1, "automask: crop layer ", crop_n_layers, " would get no points (",
               "points_per_side ", points_per_side, " / crop_n_points_downscale_factor ",
               crop_n_points_downscale_factor, "^", crop_n_layers,
               " < 1); lower crop_n_layers or the factor");
  NEPHRO_CHECK(min_mask_region_area >= 0, "automask: min_mask_region_area must be >= 0, got ",
               min_mask_region_area);
}

// ----------------------------------------------------------------------------------
// amg helpers
// ----------------------------------------------------------------------------------

namespace amg {

// Ref: amg.py::build_point_grid (numpy.linspace: start + i * step, last = stop)
std::vector<std::array<double, 2>> point_grid(int n) {
  std::vector<double> side(static_cast<size_t>(std::max(n, 0)));
  const double start = 1.0 / (2.0 * n), stop = 1.0 - start;
  const double step = n > 1 ? (stop - start) / static_cast<double>(n - 1) : 0.0;
  for (int i = 0; i < n; ++i) side[i] = static_cast<double>(i) * step + start;
  if (n > 1) side[n - 1] = stop;
  std::vector<std::array<double, 2>> points;
  points.reserve(side.size() * side.size());
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) points.push_back({side[c], side[r]});
  return points;
}

// Ref: amg.py::build_all_layer_point_grids
std::vector<std::vector<std::array<double, 2>>> layer_point_grids(int n_per_side, int n_layers,
                                                                  int factor) {
  std::vector<std::vector<std::array<double, 2>>> grids;
  int64_t scale = 1;
  for (int i = 0; i <= n_layers; ++i, scale *= factor)
    grids.push_back(point_grid(static_cast<int>(n_per_side / scale)));
  return grids;
}

// Ref: amg.py::generate_crop_boxes
std::vector<CropBox> crop_boxes(int64_t h, int64_t w, int n_layers, double overlap_ratio) {
  std::vector<CropBox> boxes{{{0, 0, w, h}, 0}};
  const double short_side = static_cast<double>(std::min(h, w));
  const auto crop_len = [](int64_t orig, int64_t n, int64_t overlap) {
    return static_cast<int64_t>(
        std::ceil(static_cast<double>(overlap * (n - 1) + orig) / static_cast<double>(n)));
  };
  for (int layer = 0; layer < n_layers; ++layer) {
    const int64_t n = int64_t{1} << (layer + 1);
    const auto overlap = static_cast<int64_t>(overlap_ratio * short_side *
                                              (2.0 / static_cast<double>(n)));
    const int64_t cw = crop_len(w, n, overlap), ch = crop_len(h, n, overlap);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const int64_t x0 = (cw - overlap) * i, y0 = (ch - overlap) * j;
        boxes.push_back({{x0, y0, std::min(x0 + cw, w), std::min(y0 + ch, h)}, layer + 1});
      }
  }
  return boxes;
}

// Ref: amg.py::calculate_stability_score
at::Tensor stability_score(const at::Tensor& logits, double threshold, double offset) {
  const at::Tensor inter = (logits > threshold + offset).sum({-2, -1});
  const at::Tensor uni = (logits > threshold - offset).sum({-2, -1});
  return inter.to(at::kFloat) / uni.to(at::kFloat);  // int32 / int32 in the reference
}

// Ref: amg.py::batched_mask_to_box
std::array<int64_t, 4> mask_to_box(const at::Tensor& mask) {
  const at::Tensor m = mask.contiguous();
  const int64_t h = m.size(0), w = m.size(1);
  const bool* p = m.data_ptr<bool>();
  int64_t x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      if (p[y * w + x]) {
        x0 = std::min(x0, x), x1 = std::max(x1, x);
        y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  if (x1 < 0) return {0, 0, 0, 0};
  return {x0, y0, x1, y1};
}

// Ref: amg.py::is_box_near_crop_edge (torch.isclose with atol 20, rtol 0)
bool box_near_crop_edge(const std::array<int64_t, 4>& box, const std::array<int64_t, 4>& crop,
                        const std::array<int64_t, 4>& image, bool include_image_edge) {
  constexpr double kAtol = 20.0;
  const std::array<int64_t, 4> shifted = {box[0] + crop[0], box[1] + crop[1], box[2] + crop[0],
                                          box[3] + crop[1]};
  bool near_crop = false, all_near_image = true;
  for (int k = 0; k < 4; ++k) {
    const auto v = static_cast<float>(shifted[k]);
    const bool at_crop = std::abs(v - static_cast<float>(crop[k])) <= kAtol;
    const bool at_image = std::abs(v - static_cast<float>(image[k])) <= kAtol;
    near_crop = near_crop || (at_crop && !at_image);
    all_near_image = all_near_image && at_image;
  }
  return include_image_edge ? near_crop : (near_crop || all_near_image);
}

// Ref: torchvision/csrc/ops/cpu/nms_kernel.cpp (0.14) via ops.batched_nms
std::vector<int64_t> box_nms(const std::vector<std::array<float, 4>>& boxes,
                             const std::vector<float>& scores, double iou_threshold) {
  const size_t n = boxes.size();
  NEPHRO_CHECK(scores.size() == n, "automask NMS: ", n, " boxes but ", scores.size(), " scores");
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  std::vector<float> area(n);
  for (size_t i = 0; i < n; ++i)
    area[i] = (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]);
  std::vector<char> dropped(n, 0);
  std::vector<int64_t> keep;
  for (size_t oi = 0; oi < n; ++oi) {
    const int64_t i = order[oi];
    if (dropped[i]) continue;
    keep.push_back(i);
    const auto& a = boxes[i];
    for (size_t oj = oi + 1; oj < n; ++oj) {
      const int64_t j = order[oj];
      if (dropped[j]) continue;
      const auto& b = boxes[j];
      const float iw = std::max(0.0f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
      const float ih = std::max(0.0f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
      const float inter = iw * ih;
      const float iou = inter / (area[i] + area[j] - inter);
      if (static_cast<double>(iou) > iou_threshold) dropped[j] = 1;
    }
  }
  return keep;
}

// Ref: amg.py::remove_small_regions (cv2.connectedComponentsWithStats, connectivity 8)
bool remove_small_regions(at::Tensor& mask, double area_threshold, RegionMode mode) {
  const bool holes = mode == RegionMode::kHoles;
  const at::Tensor m = mask.contiguous();
  const int h = static_cast<int>(m.size(0)), w = static_cast<int>(m.size(1));
  cv::Mat working(h, w, CV_8U);
  const bool* src = m.data_ptr<bool>();
  for (int i = 0; i < h * w; ++i) working.data[i] = static_cast<uint8_t>(src[i] != holes);
  cv::Mat labels, stats, centroids;
  const int n_labels = cv::connectedComponentsWithStats(working, labels, stats, centroids, 8, CV_32S);
  std::vector<char> fill(static_cast<size_t>(n_labels), 0);  // label -> in the new mask
  bool any_small = false;
  for (int l = 1; l < n_labels; ++l)
    if (stats.at<int>(l, cv::CC_STAT_AREA) < area_threshold) fill[l] = 1, any_small = true;
  if (!any_small) return false;
  fill[0] = 1;  // holes: background label (the mask) plus the small holes
  if (!holes) {
    // Islands: every label but the background and the small ones; if none is left,
    // the largest (first of equals).
    bool any = false;
    for (int l = 0; l < n_labels; ++l) fill[l] = !fill[l], any = any || fill[l];
    if (!any) {
      int best = 1;
      for (int l = 2; l < n_labels; ++l)
        if (stats.at<int>(l, cv::CC_STAT_AREA) > stats.at<int>(best, cv::CC_STAT_AREA)) best = l;
      fill[best] = 1;
    }
  }
  at::Tensor out = at::empty({h, w}, at::kBool);
  bool* dst = out.data_ptr<bool>();
  const int* lab = labels.ptr<int>();
  for (int i = 0; i < h * w; ++i) dst[i] = fill[lab[i]] != 0;
  mask = out;
  return true;
}

}  // namespace amg

// ----------------------------------------------------------------------------------
// The generator
// ----------------------------------------------------------------------------------

namespace {

// One candidate mask (the reference's MaskData row); masks are full-image [H, W] bool.
struct Candidate {
  at::Tensor mask;
  std::array<int64_t, 4> box{};  // XYXY, crop frame until the crop is done
  float iou = 0.f;
  float stability = 0.f;
  std::array<double, 2> point{};  // crop frame until the crop is done
  size_t crop = 0;                // index into the crop list
};

struct CropContext {
  const SamModel& model;
  const AutomaskOptions& options;
  std::array<int64_t, 4> crop{};    // XYXY
  std::array<int64_t, 2> image_hw{};
  const ImageEmbedding* embedding = nullptr;
  size_t crop_index = 0;
};

// [B*C] candidates of one batch of points, filtered by predicted IoU, stability and
// the crop edge, masks pasted into the full image.
// Ref: automatic_mask_generator.py::_process_batch
std::vector<Candidate> process_batch(const CropContext& ctx,
                                     const std::vector<std::array<double, 2>>& points) {
  SamImpl& sam = internal::module(ctx.model);
  const ImageEmbedding& e = *ctx.embedding;
  const AutomaskOptions& o = ctx.options;
  const auto b = static_cast<int64_t>(points.size());
  // ResizeLongestSide.apply_coords in float64; the prompt encoder keeps float64 until
  // it normalises, as the reference's numpy points do.
  at::Tensor coords = at::empty({b, 1, 2}, at::kDouble);
  const double sx = static_cast<double>(e.input_size[1]) / static_cast<double>(e.original_size[1]);
  const double sy = static_cast<double>(e.input_size[0]) / static_cast<double>(e.original_size[0]);
  auto* c = coords.data_ptr<double>();
  for (int64_t i = 0; i < b; ++i) c[2 * i] = points[i][0] * sx, c[2 * i + 1] = points[i][1] * sy;
  const at::Tensor labels = at::ones({b, 1}, at::kInt);
  const bool multimask = o.output_type != AutomaskOutput::kSingleMask;
  const DecodeOutput d = decode(sam, e.embedding, coords, labels, {}, {}, multimask, e.input_size,
                                e.original_size);
  const int64_t n_out = d.mask_logits.size(1);
  const at::Tensor logits = d.mask_logits.flatten(0, 1);  // [B*C, h, w]
  const at::Tensor iou = d.iou.flatten(0, 1).contiguous();
  at::Tensor keep = at::ones({logits.size(0)}, at::kBool);
  if (o.pred_iou_thresh > 0.0) keep = keep & (iou > o.pred_iou_thresh);
  const at::Tensor stab = amg::stability_score(logits, sam.config.mask_threshold,
                                               o.stability_score_offset).contiguous();
  if (o.stability_score_thresh > 0.0) keep = keep & (stab >= o.stability_score_thresh);
  const at::Tensor kept = keep.nonzero().flatten();
  const std::array<int64_t, 4> image_box = {0, 0, ctx.image_hw[1], ctx.image_hw[0]};
  const auto& crop = ctx.crop;
  std::vector<Candidate> out;
  for (int64_t k = 0; k < kept.size(0); ++k) {
    const int64_t idx = kept[k].item<int64_t>();
    Candidate cand;
    const at::Tensor mask = logits[idx] > sam.config.mask_threshold;
    cand.box = amg::mask_to_box(mask);
    if (amg::box_near_crop_edge(cand.box, crop, image_box, o.include_image_edge)) continue;
    // Ref: amg.py::uncrop_masks
    cand.mask = at::zeros({ctx.image_hw[0], ctx.image_hw[1]}, at::kBool);
    cand.mask.slice(0, crop[1], crop[3]).slice(1, crop[0], crop[2]).copy_(mask);
    cand.iou = iou[idx].item<float>();
    cand.stability = stab[idx].item<float>();
    cand.point = points[idx / n_out];
    cand.crop = ctx.crop_index;
    out.push_back(std::move(cand));
  }
  return out;
}

std::vector<std::array<float, 4>> float_boxes(const std::vector<Candidate>& cands) {
  std::vector<std::array<float, 4>> boxes;
  for (const auto& c : cands)
    boxes.push_back({static_cast<float>(c.box[0]), static_cast<float>(c.box[1]),
                     static_cast<float>(c.box[2]), static_cast<float>(c.box[3])});
  return boxes;
}

std::vector<Candidate> take(std::vector<Candidate>& cands, const std::vector<int64_t>& keep) {
  std::vector<Candidate> out;
  out.reserve(keep.size());
  for (int64_t i : keep) out.push_back(std::move(cands[i]));
  return out;
}

// NMS within one crop, ranked as output_type says (none for "Multi-mask (all)").
// Ref: the fork's _process_crop (segment-anything: the best-quality branch)
std::vector<Candidate> nms_within_crop(std::vector<Candidate> cands, const AutomaskOptions& o) {
  if (o.output_type == AutomaskOutput::kMultiMaskAll) return cands;
  std::vector<float> scores;
  for (const auto& c : cands) {
    const auto area = static_cast<float>(c.mask.sum().item<int64_t>());
    switch (o.output_type) {
      case AutomaskOutput::kMultiMaskBestQuality: scores.push_back(c.iou); break;
      case AutomaskOutput::kMultiMaskLargest: scores.push_back(area); break;
      default: scores.push_back(-area); break;  // single mask, smallest
    }
  }
  return take(cands, amg::box_nms(float_boxes(cands), scores, o.box_nms_thresh));
}

// points_per_batch, lowered where one batch's float32 logits at crop size (3 masks per
// point) would pass kAutomaskBatchBytes. Batching changes memory, not results: every
// filter before the crop's NMS is per mask.
int64_t effective_batch(const AutomaskOptions& o, double crop_h, double crop_w) {
  const double per_point = 3.0 * crop_h * crop_w * sizeof(float);
  const auto fit = static_cast<int64_t>(static_cast<double>(kAutomaskBatchBytes) / std::max(per_point, 1.0));
  return std::max<int64_t>(1, std::min<int64_t>(o.points_per_batch, fit));
}

// Ref: automatic_mask_generator.py::_process_crop
std::vector<Candidate> process_crop(CropContext ctx, const at::Tensor& rgb,
                                    const std::vector<std::array<double, 2>>& grid,
                                    const std::function<void()>& batch_done) {
  const auto& crop = ctx.crop;
  ImageEmbedding own;
  if (ctx.embedding == nullptr) {
    own = ctx.model.encode(rgb.slice(0, crop[1], crop[3]).slice(1, crop[0], crop[2]));
    ctx.embedding = &own;
  }
  const double cw = static_cast<double>(crop[2] - crop[0]);
  const double ch = static_cast<double>(crop[3] - crop[1]);
  std::vector<std::array<double, 2>> points;
  for (const auto& g : grid) points.push_back({g[0] * cw, g[1] * ch});
  std::vector<Candidate> cands;
  const auto per_batch = static_cast<size_t>(effective_batch(ctx.options, ch, cw));
  for (size_t start = 0; start < points.size(); start += per_batch) {
    const std::vector<std::array<double, 2>> batch(
        points.begin() + static_cast<std::ptrdiff_t>(start),
        points.begin() + static_cast<std::ptrdiff_t>(std::min(points.size(), start + per_batch)));
    for (auto& c : process_batch(ctx, batch)) cands.push_back(std::move(c));
    batch_done();
  }
  cands = nms_within_crop(std::move(cands), ctx.options);
  for (auto& c : cands) {  // Ref: amg.py::uncrop_boxes_xyxy, uncrop_points
    c.box = {c.box[0] + crop[0], c.box[1] + crop[1], c.box[2] + crop[0], c.box[3] + crop[1]};
    c.point = {c.point[0] + static_cast<double>(crop[0]), c.point[1] + static_cast<double>(crop[1])};
  }
  return cands;
}

// Across crops: prefer masks of smaller crops (score 1 / crop area, float32).
// Ref: automatic_mask_generator.py::_generate_masks
std::vector<Candidate> nms_across_crops(std::vector<Candidate> cands,
                                        const std::vector<amg::CropBox>& crops, double thresh) {
  std::vector<float> scores;
  for (const auto& c : cands) {
    const auto& b = crops[c.crop].xyxy;
    scores.push_back(1.0f / static_cast<float>((b[2] - b[0]) * (b[3] - b[1])));
  }
  return take(cands, amg::box_nms(float_boxes(cands), scores, thresh));
}

// Fills small holes, removes small islands, then NMS preferring untouched masks.
// Ref: automatic_mask_generator.py::postprocess_small_regions
std::vector<Candidate> postprocess_small_regions(std::vector<Candidate> cands, int min_area,
                                                 double nms_thresh) {
  if (cands.empty()) return cands;
  std::vector<at::Tensor> masks;
  std::vector<std::array<int64_t, 4>> boxes;
  std::vector<float> scores;
  for (const auto& c : cands) {
    at::Tensor m = c.mask;
    const bool filled = amg::remove_small_regions(m, min_area, amg::RegionMode::kHoles);
    const bool erased = amg::remove_small_regions(m, min_area, amg::RegionMode::kIslands);
    masks.push_back(m);
    boxes.push_back(amg::mask_to_box(m));
    scores.push_back((filled || erased) ? 0.0f : 1.0f);
  }
  std::vector<std::array<float, 4>> fboxes;
  for (const auto& b : boxes)
    fboxes.push_back({static_cast<float>(b[0]), static_cast<float>(b[1]),
                      static_cast<float>(b[2]), static_cast<float>(b[3])});
  const std::vector<int64_t> keep = amg::box_nms(fboxes, scores, nms_thresh);
  for (int64_t i : keep)
    if (scores[i] == 0.0f) cands[i].mask = masks[i], cands[i].box = boxes[i];
  return take(cands, keep);
}

AutoMask to_record(const Candidate& c, const std::vector<amg::CropBox>& crops) {
  AutoMask m;
  m.segmentation = c.mask;
  m.area = c.mask.sum().item<int64_t>();
  const auto xywh = [](const std::array<int64_t, 4>& b) {
    return std::array<double, 4>{static_cast<double>(b[0]), static_cast<double>(b[1]),
                                 static_cast<double>(b[2] - b[0]),
                                 static_cast<double>(b[3] - b[1])};
  };
  m.bbox = xywh(c.box);
  m.predicted_iou = c.iou;
  m.point_coords = c.point;
  m.stability_score = c.stability;
  m.crop_box = xywh(crops[c.crop].xyxy);
  return m;
}

}  // namespace

// Ref: automatic_mask_generator.py::SamAutomaticMaskGenerator.generate
std::vector<AutoMask> generate_masks(const SamModel& model, const at::Tensor& image,
                                     const AutomaskOptions& options,
                                     const ImageEmbedding* full_image_embedding,
                                     const AutomaskProgress& progress) {
  options.validate();
  NEPHRO_CHECK(model.config().preprocess == SamPreprocess::kSam,
               "automask: needs a SAM model with point prompts (MedSAM takes boxes only)");
  const at::Tensor rgb = as_rgb_u8(image);
  const std::array<int64_t, 2> hw = {rgb.size(0), rgb.size(1)};
  if (full_image_embedding != nullptr)
    NEPHRO_CHECK(full_image_embedding->original_size == hw,
                 "automask: full_image_embedding is of a ", full_image_embedding->original_size[0],
                 "x", full_image_embedding->original_size[1], " image, the image is ", hw[0], "x",
                 hw[1]);
  c10::InferenceMode guard;
  const auto grids = amg::layer_point_grids(options.points_per_side, options.crop_n_layers,
                                            options.crop_n_points_downscale_factor);
  const auto crops = amg::crop_boxes(hw[0], hw[1], options.crop_n_layers,
                                     options.crop_overlap_ratio);
  int64_t total = 0, done = 0;
  for (const auto& c : crops) {
    const int64_t per_batch = effective_batch(options, static_cast<double>(c.xyxy[3] - c.xyxy[1]),
                                              static_cast<double>(c.xyxy[2] - c.xyxy[0]));
    total += (static_cast<int64_t>(grids[c.layer].size()) + per_batch - 1) / per_batch;
  }
  const auto batch_done = [&] {
    if (progress) progress(++done, total);
  };
  std::vector<Candidate> all;
  for (size_t i = 0; i < crops.size(); ++i) {
    CropContext ctx{model, options, crops[i].xyxy, hw,
                    crops[i].layer == 0 ? full_image_embedding : nullptr, i};
    for (auto& c : process_crop(ctx, rgb, grids[crops[i].layer], batch_done))
      all.push_back(std::move(c));
  }
  if (crops.size() > 1) all = nms_across_crops(std::move(all), crops, options.crop_nms_thresh);
  if (options.min_mask_region_area > 0)
    all = postprocess_small_regions(std::move(all), options.min_mask_region_area,
                                    std::max(options.box_nms_thresh, options.crop_nms_thresh));
  std::vector<AutoMask> out;
  out.reserve(all.size());
  for (const auto& c : all) out.push_back(to_record(c, crops));
  return out;
}

}  // namespace nephroseg::sam

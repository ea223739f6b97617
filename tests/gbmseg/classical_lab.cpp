// backends_lab: development harness for the weight-free backends (not a test).
//   backends_lab phantoms [num_targets] [S]
//   backends_lab self [S]
//   backends_lab glom [ref_index] [S]
//   backends_lab sample [S]        (reference -> target of the GBMSeg sample; no truth)
// Env: LAB_DUMP=dir writes overlays.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <opencv2/imgproc.hpp>
#include <string>

#include "nephroseg/gbmseg/classical_features.h"
#include "nephroseg/gbmseg/classical_segmenter.h"
#include "nephroseg/core/resize.h"
#include "nephroseg/core/threads.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/gbmseg/prompts.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/measure/phantom.h"

using namespace nephroseg;

static cv::Mat pil(const cv::Mat& m, int s) {
  cv::Mat c = m.isContinuous() ? m : m.clone();
  at::Tensor t = at::from_blob(c.data, {c.rows, c.cols, c.channels()}, at::kByte);
  at::Tensor r = pil_resize(t, s, s, PilFilter::kBicubic).contiguous();
  cv::Mat out(s, s, CV_8UC(c.channels()), r.data_ptr());
  return out.clone();
}

static double dice(const cv::Mat& a, const cv::Mat& b) {
  const double i = cv::countNonZero(a & b), s = cv::countNonZero(a) + cv::countNonZero(b);
  return s == 0 ? 1.0 : 2 * i / s;
}

struct Lab {
  gbmseg::ClassicalFeatureExtractor fx{};
  gbmseg::ClassicalSegmenter seg{};
  int S = 560;
  const cv::Mat* truth_ = nullptr;
  int stat_pos = 0, stat_pos_on = 0, stat_neg = 0, stat_neg_off = 0, stat_runs = 0;
  std::string dump = std::getenv("LAB_DUMP") ? std::getenv("LAB_DUMP") : "";

  // Returns the mask at the target's own size.
  cv::Mat run(const cv::Mat& ref_rgb, const cv::Mat& ref_mask, const cv::Mat& tgt_rgb, const std::string& tag,
              int* npos = nullptr, int* nneg = nullptr) {
    gbmseg::PromptOptions opt = gbmseg::PromptOptions::authors_code();
    opt.size = S;
    auto a0 = std::chrono::steady_clock::now();
    gbmseg::GbmSegPipeline pipe(std::make_shared<gbmseg::ClassicalFeatureExtractor>(fx),
                                std::make_shared<gbmseg::ClassicalSegmenter>(seg), opt);
    pipe.set_reference(ref_rgb, ref_mask);
    gbmseg::SegmentResult sr = pipe.segment(tgt_rgb);
    auto a3 = std::chrono::steady_clock::now();
    if (std::getenv("LAB_TIME")) std::printf("  total %.3f (feat %.3f prompts %.3f seg %.3f)\n", std::chrono::duration<double>(a3 - a0).count(), sr.timings.features, sr.timings.prompts, sr.timings.segment);
    const gbmseg::PromptResult& pr = sr.prompts;
    const cv::Mat t = sr.image_working;
    if (truth_ && !truth_->empty()) {
      cv::Mat tm = pil(*truth_, S);
      if (tm.channels() > 1) cv::cvtColor(tm, tm, cv::COLOR_RGB2GRAY);
      for (auto& p : pr.ape.final_pos) { stat_pos++; stat_pos_on += tm.at<uint8_t>(p.y, p.x) > 127; }
      for (auto& p : pr.ape.final_neg) { stat_neg++; stat_neg_off += tm.at<uint8_t>(p.y, p.x) <= 127; }
      stat_runs++;
    }
    if (std::getenv("LAB_DIAG") && truth_ && !truth_->empty()) {
      cv::Mat tm = pil(*truth_, S);
      auto on = [&](const gbmseg::Points& ps) { int k = 0; for (auto& p : ps) k += tm.at<uint8_t>(p.y, p.x) > 127; return k; };
      std::printf("  ref fg %zu bg %zu | fwd fg %zu kept %zu (on truth %d/%zu) pos_init %zu (on %d) final_pos %zu (on %d) | neg_init %zu (on %d) final_neg %zu (on %d)\n",
        pr.patch_sets.fg.size(), pr.patch_sets.bg.size(), pr.fg.forward.size(), pr.fg.kept.size(), on(pr.bwd_pos_pts), pr.bwd_pos_pts.size(),
        pr.pos_initial.size(), on(pr.pos_initial), pr.ape.final_pos.size(), on(pr.ape.final_pos), pr.neg_initial.size(), on(pr.neg_initial), pr.ape.final_neg.size(), on(pr.ape.final_neg));
    }
    const std::vector<cv::Point2f>& pts = sr.points;
    const std::vector<int>& lab = sr.labels;
    if (npos) *npos = pr.ape.final_pos.size();
    if (nneg) *nneg = pr.ape.final_neg.size();
    cv::Mat pred = sr.mask_working;
    if (!dump.empty()) {
      cv::Mat ov = io::overlay_mask(t, pred, io::colors::kGreen);
      std::vector<cv::Point2f> pp, nn;
      for (size_t i = 0; i < pts.size(); ++i) (lab[i] ? pp : nn).push_back(pts[i]);
      if (truth_ && !truth_->empty()) io::draw_mask_contour(ov, pil(*truth_, S) > 127, io::colors::kMagenta, 2);
      io::draw_points(ov, pp, {}, io::colors::kYellow, 4);
      io::draw_points(ov, nn, {}, io::colors::kRed, 4);
      std::filesystem::create_directories(dump);
      io::write_png(dump + "/" + tag + ".png", ov);
    }
    cv::Mat back = sr.mask;
    return back;
  }
};

static cv::Mat rgb_of(const cv::Mat& g) {
  cv::Mat c;
  cv::cvtColor(g, c, cv::COLOR_GRAY2RGB);
  return c;
}

int main(int argc, char** argv) {
  configure_threads(2);
  std::string mode = argc > 1 ? argv[1] : "phantoms";
  Lab lab;
  auto env = [](const char* k, double d) { const char* v = std::getenv(k); return v ? std::atof(v) : d; };
  {
    gbmseg::ClassicalSegmenterOptions so;
    so.grabcut_iterations = (int)env("LAB_GC", so.grabcut_iterations);
    so.keep_seeded_components = env("LAB_KEEP", 1) != 0;
    so.work_size = (int)env("LAB_WORK", so.work_size);
    so.seed_radius_px = env("LAB_R", so.seed_radius_px);
    so.score_smoothing_px = env("LAB_SMOOTH", so.score_smoothing_px);
    so.open_radius_px = (int)env("LAB_OPEN", so.open_radius_px);
    so.close_radius_px = (int)env("LAB_CLOSE", so.close_radius_px);
    so.score_bias = env("LAB_BIAS", so.score_bias);
    so.unseeded_min_area = env("LAB_UNSEEDED", so.unseeded_min_area);
    so.width_opening = env("LAB_WOPEN", so.width_opening);
    so.boundary_growth_px = (int)env("LAB_GROW", so.boundary_growth_px);
    so.self_training_rounds = (int)env("LAB_ST", so.self_training_rounds);
    so.self_training_clusters = (int)env("LAB_STK", so.self_training_clusters);
    so.self_training_margin = env("LAB_STM", so.self_training_margin);
    so.within_seed_lambda = env("LAB_LAMBDA", so.within_seed_lambda);
    auto list = [](const char* k, std::vector<double>& v) {
      const char* e = std::getenv(k); if (!e) return; v.clear(); std::string t = e; size_t i = 0;
      while (i < t.size()) { size_t j = t.find(',', i); if (j == std::string::npos) j = t.size(); if (j > i) v.push_back(std::atof(t.substr(i, j - i).c_str())); i = j + 1; }
    };
    list("LAB_IS", so.intensity_scales); list("LAB_TS", so.texture_scales); list("LAB_RS", so.ridge_scales);
    lab.seg = gbmseg::ClassicalSegmenter(so);
    gbmseg::ClassicalFeatureOptions fo;
    list("LAB_FIS", fo.intensity_scales); list("LAB_FGS", fo.gradient_scales); list("LAB_FRS", fo.ridge_scales); list("LAB_FTS", fo.texture_scales);
    fo.patch_std = env("LAB_FPSTD", 1) != 0;
    lab.fx = gbmseg::ClassicalFeatureExtractor(fo);
  }
  auto tp = std::chrono::steady_clock::now();
  measure::PhantomOptions pt;
  pt.thickness_px = env("LAB_THICK", 20);
  for (int i = 0; i < 3; ++i) { pt.seed = i; measure::generate_phantom(pt); }
  std::printf("phantom gen %.3fs each\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count() / 3);
  auto t0 = std::chrono::steady_clock::now();
  if (mode == "phantoms") {
    const int n = argc > 2 ? std::atoi(argv[2]) : 6;
    if (argc > 3) lab.S = std::atoi(argv[3]);
    measure::PhantomOptions po;
    po.thickness_px = env("LAB_THICK", 20);
    po.seed = 1000;
    const measure::Phantom ref = measure::generate_phantom(po);
    double sum = 0;
    for (int i = 0; i < n; ++i) {
      po.seed = 1 + i;
      const measure::Phantom t = measure::generate_phantom(po);
      int np = 0, nn = 0;
      lab.truth_ = &t.mask;
      cv::Mat pred = lab.run(rgb_of(ref.image), ref.mask, rgb_of(t.image), "ph" + std::to_string(po.seed), &np, &nn);
      const double d = dice(pred, t.mask);
      if (!lab.dump.empty()) {
        cv::Mat c = io::to_canvas(t.image);
        io::tint_mask(c, pred & ~t.mask, io::colors::kRed, 0.5);
        io::tint_mask(c, t.mask & ~pred, io::colors::kBlue, 0.5);
        io::tint_mask(c, t.mask & pred, io::colors::kGreen, 0.3);
        io::write_png(lab.dump + "/ph_err" + std::to_string(po.seed) + ".png", c);
      }
      sum += d;
      std::printf("phantom seed %d: dice %.4f (pos %d neg %d)\n", (int)po.seed, d, np, nn);
    }
    std::printf("MEAN phantoms %.4f\n", sum / n);
  } else if (mode == "dumpph") {
    measure::PhantomOptions po;
    po.thickness_px = env("LAB_THICK", 20);
    po.seed = argc > 2 ? std::atoi(argv[2]) : 1;
    const measure::Phantom t = measure::generate_phantom(po);
    cv::Mat c = io::to_canvas(t.image);
    io::draw_mask_contour(c, t.mask, io::colors::kGreen);
    io::write_png("/tmp/wf_phantom.png", c);
  } else if (mode == "self" || mode == "sample") {
    if (argc > 2) lab.S = std::atoi(argv[2]);
    const std::string d = "/work/shared/data/gbmseg_sample/";
    const cv::Mat ri = io::read_image_rgb(d + "reference_image/001_264193_2.png");
    const cv::Mat rm = io::read_mask(d + "reference_mask/001_264193_2.png");
    if (mode == "self") {
      int np = 0, nn = 0;
      lab.truth_ = &rm;
      cv::Mat pred = lab.run(ri, rm, ri, "self", &np, &nn);
      if (!lab.dump.empty()) {
        cv::Mat c = io::to_canvas(ri);
        io::tint_mask(c, pred & ~rm, io::colors::kRed, 0.5);
        io::tint_mask(c, rm & ~pred, io::colors::kBlue, 0.5);
        io::tint_mask(c, rm & pred, io::colors::kGreen, 0.3);
        io::write_png(lab.dump + "/self_err.png", c);
      }
      const double inter = cv::countNonZero(pred & rm);
      std::printf("SELF dice %.4f (pos %d neg %d) precision %.3f recall %.3f\n", dice(pred, rm), np, nn,
                  inter / std::max(1, cv::countNonZero(pred)), inter / std::max(1, cv::countNonZero(rm)));
    } else {
      const cv::Mat ti = io::read_image_rgb(d + "target_image/001_250744_2.png");
      cv::Mat pred = lab.run(ri, rm, ti, "sample_target");
      std::printf("target fg fraction %.3f\n", cv::countNonZero(pred) / double(pred.total()));
    }
  } else if (mode == "glom") {
    const int ref = argc > 2 ? std::atoi(argv[2]) : 0;
    if (argc > 3) lab.S = std::atoi(argv[3]);
    const std::string d = "/work/shared/data/glomeruli/";
    auto files = io::list_image_files(d + "images");
    io::MaskReadOptions mo;
    mo.channel = 0;
    mo.threshold = 127;
    const cv::Mat ri = io::read_image_rgb(files[ref]);
    const cv::Mat rm = io::read_mask(d + "masks/" + io::file_stem(files[ref]) + ".png", mo);
    double sum = 0;
    int n = 0;
    for (size_t i = 0; i < files.size(); ++i) {
      if ((int)i == ref) continue;
      const cv::Mat ti = io::read_image_rgb(files[i]);
      const cv::Mat tm = io::read_mask(d + "masks/" + io::file_stem(files[i]) + ".png", mo);
      lab.truth_ = &tm;
      cv::Mat pred = lab.run(ri, rm, ti, "glom_" + io::file_stem(files[i]));
      const double dd = dice(pred, tm);
      sum += dd;
      ++n;
      std::printf("glom %s: dice %.4f\n", io::file_stem(files[i]).c_str(), dd);
    }
    std::printf("MEAN glom (ref %s) %.4f\n", io::file_stem(files[ref]).c_str(), sum / n);
  }
  if (lab.stat_runs)
    std::printf("PROMPTS pos/target %.1f pos-precision %.3f neg/target %.1f neg-precision %.3f\n",
                double(lab.stat_pos) / lab.stat_runs, double(lab.stat_pos_on) / std::max(1, lab.stat_pos),
                double(lab.stat_neg) / lab.stat_runs, double(lab.stat_neg_off) / std::max(1, lab.stat_neg));
  std::printf("time %.2fs\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

// Ref: GlomSAM train.py (training loop, AdamW, loss), utils.py::check_accuracy
#include <ATen/ATen.h>
#include <c10/util/string_utils.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/nn/modules/batchnorm.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <random>
#include <sstream>
#include <unordered_set>

#include "models/glomsam/trainer_access.h"
#include "models/unet/unet.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/image.h"
#include "nephroseg/train/dataset.h"
#include "nephroseg/train/distributed.h"
#include "nephroseg/train/glomsam_trainer.h"

namespace nephroseg::train {

namespace fs = std::filesystem;
using checkpoint::Value;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Per-epoch RNG: independent of how many numbers earlier epochs drew, so a resumed
// run draws exactly what an uninterrupted one would.
std::mt19937_64 epoch_rng(uint64_t seed, int64_t epoch, uint64_t stream) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(epoch), static_cast<uint32_t>(stream)};
  return std::mt19937_64(seq);
}

std::vector<int64_t> permutation(int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  for (int64_t i = n; i > 1; --i) std::swap(idx[static_cast<size_t>(i - 1)], idx[rng() % static_cast<uint64_t>(i)]);
  return idx;
}

// Learning rate of an epoch (1-based): constant, or cosine from lr down to 0 over `epochs`.
double lr_at(const GlomSamTrainOptions& o, int64_t epoch) {
  if (o.lr_schedule != "cosine") return o.lr;
  const double t = static_cast<double>(epoch - 1) / static_cast<double>(o.epochs);
  return o.lr * 0.5 * (1.0 + std::cos(M_PI * t));
}

at::Tensor to_input(const at::Tensor& u8) { return u8.to(at::kFloat) * (1.0f / 255.0f); }

using Jitter = std::array<int64_t, 4>;

// Box jitter 0..max_jitter for `count` boxes, drawn in MyDataset's order.
std::vector<Jitter> draw_jitters(int64_t count, int64_t max_jitter, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> draw(0, std::max<int64_t>(0, max_jitter));
  std::vector<Jitter> out;
  for (int64_t b = 0; b < count; ++b) out.push_back(Jitter{draw(rng), draw(rng), draw(rng), draw(rng)});
  return out;
}

// Boxes from GT masks [B, 1, H, W] with jitter[0..B).
at::Tensor boxes_with(const at::Tensor& masks, const Jitter* jitter) {
  std::vector<float> flat;
  for (int64_t b = 0; b < masks.size(0); ++b) {
    auto box = glomsam::box_from_mask(masks[b][0], jitter[b]);
    flat.insert(flat.end(), box.begin(), box.end());
  }
  return at::tensor(flat, at::kFloat).view({masks.size(0), 4});
}

at::Tensor gt_boxes(const at::Tensor& masks, int64_t max_jitter, std::mt19937_64& rng) {
  return boxes_with(masks, draw_jitters(masks.size(0), max_jitter, rng).data());
}

// ---- data parallelism ---------------------------------------------------------------

// This rank's part of a step's global batch [s, e) of the epoch order: images
// [begin, end), contiguous, rank-major (rank r takes s + r*batch ...), so that the
// union over ranks is exactly one process's batch of batch*world. A rank left without
// images (the last, short batch) runs the batch's first image with weight 0, so that
// every rank computes the same set of gradients.
struct StepShare {
  int64_t begin = 0, end = 0;
  bool idle = false;
};
StepShare step_share(int64_t s, int64_t e, int64_t batch, int64_t rank) {
  const int64_t b = std::min(e, s + rank * batch);
  const int64_t en = std::min(e, b + batch);
  if (b == en) return {s, s + 1, /*idle=*/true};
  return {b, en, /*idle=*/false};
}

// Running statistics of the BatchNorm layers in training mode (each tensor once).
std::vector<at::Tensor> training_bn_stats(const torch::nn::Module& m) {
  std::vector<at::Tensor> out;
  std::unordered_set<const void*> seen;
  for (const auto& sub : m.modules(/*include_self=*/false)) {
    const auto* bn = dynamic_cast<const torch::nn::BatchNorm2dImpl*>(sub.get());
    if (!bn || !bn->is_training() || !bn->options.track_running_stats()) continue;
    for (const at::Tensor& t : {bn->running_mean, bn->running_var}) {
      if (t.defined() && seen.insert(t.unsafeGetTensorImpl()).second) out.push_back(t);
    }
  }
  return out;
}

// BatchNorm layers normalise with (and keep) their running statistics.
void freeze_batchnorm(torch::nn::Module& m) {
  for (const auto& sub : m.modules(/*include_self=*/false)) {
    if (dynamic_cast<torch::nn::BatchNorm2dImpl*>(sub.get())) sub->eval();
  }
}

// After backward: sums the gradients over ranks (the losses were already weighted by each
// rank's share of the batch) and averages the running statistics of training-mode
// BatchNorm layers weighted by the same shares (so the running mean is exactly the one
// of the global batch, and an idle rank's dummy image counts for nothing), with `extra`
// float32 tensors summed along, in one all-reduce.
void sync_step(const std::vector<at::Tensor>& params, const torch::nn::Module& m, Communicator& comm,
               double share, const std::vector<at::Tensor>& extra = {}) {
  std::vector<at::Tensor> t;
  for (const auto& p : params) {
    if (p.grad().defined()) t.push_back(p.grad());
  }
  for (auto& stat : training_bn_stats(m)) {
    stat.mul_(share);
    t.push_back(stat);
  }
  t.insert(t.end(), extra.begin(), extra.end());
  comm.all_reduce_sum(t);
}

// Every parameter and buffer takes rank 0's value (dtypes the collectives carry).
void broadcast_state(const torch::nn::Module& m, Communicator& comm) {
  std::vector<at::Tensor> state;
  for (const auto& t : m.parameters()) state.push_back(t);
  for (const auto& t : m.buffers()) {
    const auto st = t.scalar_type();
    if (st == at::kFloat || st == at::kDouble || st == at::kLong) state.push_back(t);
  }
  comm.broadcast(state);
}

// Every rank must run the same plan; rank 0's values are the reference.
void check_same_plan(Communicator& comm, const std::vector<std::pair<const char*, int64_t>>& plan) {
  if (comm.world_size() == 1) return;
  std::vector<int64_t> mine;
  for (const auto& p : plan) mine.push_back(p.second);
  at::Tensor root = at::tensor(mine, at::kLong);
  comm.broadcast({root});
  for (size_t i = 0; i < plan.size(); ++i) {
    const int64_t r0 = root[static_cast<int64_t>(i)].item<int64_t>();
    NEPHRO_CHECK(r0 == mine[i], "distributed: ", comm.describe(), " has ", plan[i].first, " ", mine[i],
                 " but rank 0 has ", r0, " (every rank needs the same options, data and checkpoint)");
  }
}

struct Data {
  PatchSet train, val, test;
  std::string split_text;  // split.txt, written by write_split() once the run can start
};

// split.txt and the stale temporaries of a killed run, once every input (data, options,
// checkpoints) has been checked: a run refused for bad input writes nothing.
void write_split(const std::string& out_dir, const Data& data, bool main_rank) {
  if (!main_rank) return;
  fs::create_directories(out_dir);
  remove_stale_temporaries(out_dir);  // .tmp-<pid>-... of an earlier run killed mid-write
  write_file_atomically(out_dir + "/split.txt", data.split_text);
}

// Optimiser settings, checked here: LibTorch's own check says only "Invalid learning rate".
void check_optimizer_options(const char* what, double lr, double weight_decay) {
  NEPHRO_CHECK(std::isfinite(lr) && lr > 0, what, ": --lr must be a positive, finite number (got ", lr, ")");
  NEPHRO_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, what,
               ": --weight-decay must be a finite number >= 0 (got ", weight_decay, ")");
}

Data load_data(const std::string& images, const std::string& masks, const std::string& val_images,
               const std::string& val_masks, const std::string& ratio, uint64_t seed,
               const PatchOptions& po, const std::string& out_dir, bool main_rank = true) {
  // Every problem (pairing, unreadable files, size mismatches, in the training and the
  // validation folders) is collected and named in one error before anything is written.
  std::vector<std::string> problems;
  const bool val_folders = !val_images.empty() || !val_masks.empty();
  NEPHRO_CHECK(!val_folders || (!val_images.empty() && !val_masks.empty()),
               "--val-images and --val-masks must be given together");
  auto pairs = pair_folders(images, masks, &problems);
  std::vector<SamplePair> val_pairs;
  if (val_folders) val_pairs = pair_folders(val_images, val_masks, &problems);
  std::vector<SamplePair> all = pairs;
  all.insert(all.end(), val_pairs.begin(), val_pairs.end());
  validate_pairs(all, &problems);
  if (!problems.empty()) NEPHRO_FAIL(describe_data_problems(problems));
  Split split;
  if (val_folders) {
    split.train = pairs;
    split.val = val_pairs;
  } else {
    split = split_pairs(pairs, ratio, seed);
  }
  NEPHRO_CHECK(!split.val.empty(), "no validation images (use --val-images/--val-masks or a split with a val part)");
  (void)out_dir;
  (void)main_rank;
  std::ostringstream s;
  auto list = [&](const char* name, const std::vector<SamplePair>& v) {
    s << name << ":";
    for (const auto& p : v) s << " " << p.name;
    s << "\n";
  };
  list("train", split.train);
  list("val", split.val);
  list("test", split.test);
  Data d;
  d.split_text = s.str();
  d.train = make_patches(split.train, po);
  d.val = make_patches(split.val, po);
  d.test = make_patches(split.test, po);
  if (main_rank) {
    log_info("data: ", d.train.size(), " train / ", d.val.size(), " val / ", d.test.size(), " test patches of ",
             po.model_size, " px");
  }
  return d;
}

// ---- CSV and curve --------------------------------------------------------------

std::string csv_of(const std::vector<EpochRecord>& h) {
  std::ostringstream o;
  o << "epoch,train_loss,train_bce,train_dice_loss,train_bdou,val_loss,val_dice,val_iou,val_recall,"
       "val_accuracy,seconds,images_per_second,best\n";
  o << std::setprecision(8);
  for (const auto& r : h) {
    o << r.epoch << "," << r.train_loss << "," << r.train_bce << "," << r.train_dice << ","
      << r.train_bdou << "," << r.val_loss << "," << r.val.dice << "," << r.val.iou << ","
      << r.val.recall << "," << r.val.accuracy_percent << "," << r.seconds << ","
      << r.images_per_second << "," << (r.best ? 1 : 0) << "\n";
  }
  return o.str();
}

void draw_series(cv::Mat& img, cv::Rect area, const std::vector<double>& ys, double lo, double hi,
                 cv::Scalar color) {
  if (ys.size() < 1 || hi <= lo) return;
  const size_t n = ys.size();
  auto pt = [&](size_t i) {
    const double fx = n == 1 ? 0.5 : static_cast<double>(i) / static_cast<double>(n - 1);
    const double fy = (ys[i] - lo) / (hi - lo);
    return cv::Point(area.x + static_cast<int>(fx * area.width),
                     area.y + area.height - static_cast<int>(fy * area.height));
  };
  for (size_t i = 0; i + 1 < n; ++i) cv::line(img, pt(i), pt(i + 1), color, 2, cv::LINE_AA);
  if (n == 1) cv::circle(img, pt(0), 3, color, cv::FILLED);
}

void write_curve(const std::string& path, const std::vector<EpochRecord>& h) {
  cv::Mat img(400, 800, CV_8UC3, cv::Scalar(255, 255, 255));
  std::vector<double> tl, vl, vd;
  for (const auto& r : h) {
    tl.push_back(r.train_loss);
    vl.push_back(r.val_loss);
    vd.push_back(r.val.dice);
  }
  double lo = 0, hi = 1;
  for (double v : tl) hi = std::max(hi, v);
  for (double v : vl) hi = std::max(hi, v);
  cv::Rect left(50, 40, 320, 300), right(450, 40, 320, 300);
  cv::rectangle(img, left, cv::Scalar(0, 0, 0));
  cv::rectangle(img, right, cv::Scalar(0, 0, 0));
  draw_series(img, left, tl, lo, hi, cv::Scalar(31, 119, 180));   // RGB order (written as RGB)
  draw_series(img, left, vl, lo, hi, cv::Scalar(255, 127, 14));
  draw_series(img, right, vd, 0.0, 1.0, cv::Scalar(44, 160, 44));
  auto text = [&](const std::string& s, int x, int y, cv::Scalar c) {
    cv::putText(img, s, cv::Point(x, y), cv::FONT_HERSHEY_SIMPLEX, 0.5, c, 1, cv::LINE_AA);
  };
  std::ostringstream t;
  t << std::setprecision(3) << "loss (0.." << hi << "): train blue, val orange";
  text(t.str(), 50, 25, cv::Scalar(0, 0, 0));
  text("val Dice (0..1)", 450, 25, cv::Scalar(0, 0, 0));
  text("epochs 1.." + std::to_string(h.size()), 50, 365, cv::Scalar(0, 0, 0));
  if (!vd.empty()) {
    std::ostringstream d;
    d << std::setprecision(4) << "last Dice " << vd.back();
    text(d.str(), 450, 365, cv::Scalar(0, 0, 0));
  }
  io::write_png(path, img);
}

// ---- checkpoints -----------------------------------------------------------------

Value int_key_dict() {
  Value v;
  v.kind = Value::Kind::kDict;
  return v;
}

Value optimizer_value(torch::optim::AdamW& opt, const std::vector<at::Tensor>& params, double lr, double wd) {
  Value state = int_key_dict();
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = opt.state().find(c10::guts::to_string(params[i].unsafeGetTensorImpl()));
    if (it == opt.state().end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    Value t1, t2;
    t1.kind = t2.kind = Value::Kind::kTensor;
    t1.tensor = s.exp_avg();
    t2.tensor = s.exp_avg_sq();
    Value entry = checkpoint::make_dict({{"step", checkpoint::make_float(static_cast<double>(s.step()))},
                                         {"exp_avg", t1},
                                         {"exp_avg_sq", t2}});
    state.entries.emplace_back(checkpoint::make_int(static_cast<int64_t>(i)), std::move(entry));
  }
  Value ids;
  ids.kind = Value::Kind::kList;
  for (size_t i = 0; i < params.size(); ++i) ids.items.push_back(checkpoint::make_int(static_cast<int64_t>(i)));
  Value group = checkpoint::make_dict({{"lr", checkpoint::make_float(lr)},
                                       {"betas", [] {
                                          Value b;
                                          b.kind = Value::Kind::kTuple;
                                          b.items = {checkpoint::make_float(0.9), checkpoint::make_float(0.999)};
                                          return b;
                                        }()},
                                       {"eps", checkpoint::make_float(1e-8)},
                                       {"weight_decay", checkpoint::make_float(wd)},
                                       {"amsgrad", [] {
                                          Value b;
                                          b.kind = Value::Kind::kBool;
                                          return b;
                                        }()},
                                       {"params", ids}});
  Value groups;
  groups.kind = Value::Kind::kList;
  groups.items.push_back(group);
  return checkpoint::make_dict({{"state", state}, {"param_groups", groups}});
}

void restore_optimizer(torch::optim::AdamW& opt, const std::vector<at::Tensor>& params, const Value& v,
                       const std::string& what) {
  const Value* state = v.find("state");
  NEPHRO_CHECK(state && state->is_dict(), what, ": optimizer state missing");
  for (const auto& [key, entry] : state->entries) {
    NEPHRO_CHECK(key.kind == Value::Kind::kInt && key.i >= 0 && key.i < static_cast<int64_t>(params.size()),
                 what, ": bad optimizer parameter index");
    const Value* step = entry.find("step");
    const Value* m = entry.find("exp_avg");
    const Value* s2 = entry.find("exp_avg_sq");
    NEPHRO_CHECK(step && m && s2, what, ": incomplete optimizer state for parameter ", key.i);
    const at::Tensor& p = params[static_cast<size_t>(key.i)];
    NEPHRO_CHECK(m->tensor.sizes() == p.sizes(), what, ": optimizer state shape mismatch for parameter ", key.i);
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(static_cast<int64_t>(step->kind == Value::Kind::kInt ? step->i : std::llround(step->f)));
    st->exp_avg(m->tensor.clone());
    st->exp_avg_sq(s2->tensor.clone());
    opt.state()[c10::guts::to_string(p.unsafeGetTensorImpl())] = std::move(st);
  }
}

Value history_value(const std::vector<EpochRecord>& h) {
  Value list;
  list.kind = Value::Kind::kList;
  for (const auto& r : h) {
    Value b;
    b.kind = Value::Kind::kBool;
    b.b = r.best;
    list.items.push_back(checkpoint::make_dict({
        {"epoch", checkpoint::make_int(r.epoch)},
        {"train_loss", checkpoint::make_float(r.train_loss)},
        {"train_bce", checkpoint::make_float(r.train_bce)},
        {"train_dice", checkpoint::make_float(r.train_dice)},
        {"train_bdou", checkpoint::make_float(r.train_bdou)},
        {"val_loss", checkpoint::make_float(r.val_loss)},
        {"val_dice", checkpoint::make_float(r.val.dice)},
        {"val_iou", checkpoint::make_float(r.val.iou)},
        {"val_recall", checkpoint::make_float(r.val.recall)},
        {"val_accuracy", checkpoint::make_float(r.val.accuracy_percent)},
        {"seconds", checkpoint::make_float(r.seconds)},
        {"images_per_second", checkpoint::make_float(r.images_per_second)},
        {"best", b}}));
  }
  return list;
}

double num(const Value* v) {
  if (!v) return 0.0;
  if (v->kind == Value::Kind::kInt) return static_cast<double>(v->i);
  if (v->kind == Value::Kind::kBool) return v->b ? 1.0 : 0.0;
  return v->f;
}

std::vector<EpochRecord> history_from(const Value* list) {
  std::vector<EpochRecord> h;
  if (!list) return h;
  for (const auto& it : list->items) {
    EpochRecord r;
    r.epoch = static_cast<int64_t>(num(it.find("epoch")));
    r.train_loss = num(it.find("train_loss"));
    r.train_bce = num(it.find("train_bce"));
    r.train_dice = num(it.find("train_dice"));
    r.train_bdou = num(it.find("train_bdou"));
    r.val_loss = num(it.find("val_loss"));
    r.val.dice = num(it.find("val_dice"));
    r.val.iou = num(it.find("val_iou"));
    r.val.recall = num(it.find("val_recall"));
    r.val.accuracy_percent = num(it.find("val_accuracy"));
    r.seconds = num(it.find("seconds"));
    r.images_per_second = num(it.find("images_per_second"));
    r.best = num(it.find("best")) != 0.0;
    h.push_back(r);
  }
  return h;
}

// Per-image validation (batch 1 semantics: the spec's primary metric) plus mean loss.
SegmentationMetrics evaluate(models::glomsam::GlomSamImpl& m, const PatchSet& set, int64_t batch,
                             bool auto_box, int64_t jitter, uint64_t seed, const GlomSamLossOptions& lo,
                             double threshold, double* mean_loss) {
  at::NoGradGuard no_grad;
  m.eval();
  MetricAccumulator acc(threshold);
  double loss_sum = 0;
  int64_t n = static_cast<int64_t>(set.size());
  std::mt19937_64 rng = epoch_rng(seed, -1, 7);  // the same boxes every epoch
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t e = std::min(n, s + batch);
    at::Tensor images = to_input(set.images.slice(0, s, e));
    at::Tensor masks = set.masks.slice(0, s, e).to(at::kLong);
    at::Tensor boxes = auto_box ? at::Tensor() : gt_boxes(masks, jitter, rng);
    at::Tensor logits = m.forward(images, boxes);
    for (int64_t b = 0; b < e - s; ++b) {
      acc.add_batch(logits.slice(0, b, b + 1), masks.slice(0, b, b + 1));
      loss_sum += glomsam_loss(logits.slice(0, b, b + 1), masks.slice(0, b, b + 1), lo).total.item<double>();
    }
  }
  if (mean_loss) *mean_loss = n > 0 ? loss_sum / static_cast<double>(n) : 0.0;
  return acc.result();
}

// ---- train_glomsam steps ------------------------------------------------------------

// What the steps of one GlomSAM training run share.
struct GlomSamRun {
  const GlomSamTrainOptions& o;
  Communicator& comm;
  models::glomsam::GlomSamImpl& mod;
  const std::vector<at::Tensor>& params;
  torch::optim::AdamW& opt;
  const GlomSamLossOptions& loss;  // o.loss with the ablations applied
  std::string last_path, best_path;
  bool main_rank() const { return comm.is_main(); }
  int64_t world() const { return comm.world_size(); }
};

// Where training goes on: the next epoch and the epochs without val Dice gain.
struct RunProgress {
  int64_t start_epoch = 1;
  int64_t bad_epochs = 0;
};

void check_glomsam_options(const GlomSamTrainOptions& o) {
  NEPHRO_CHECK(!o.out_dir.empty(), "train: --out is required");
  NEPHRO_CHECK(o.epochs > 0 && o.batch_size > 0, "train: epochs and batch size must be positive");
  check_optimizer_options("train", o.lr, o.weight_decay);
  o.config.validate();
  NEPHRO_CHECK(!o.distributed.enabled || o.loss.boundary == BoundaryConvention::kPerImage,
               "--distributed: the glomsam_broadcast Boundary DoU convention pairs every two images of a batch "
               "and cannot be split across ranks; use --boundary per_image");
}

Data load_glomsam_data(const GlomSamTrainOptions& o, bool main_rank) {
  PatchOptions po;
  po.model_size = o.config.sam.img_size;
  po.patch_size = o.patch_size;
  po.stride = o.stride;
  Data data = load_data(o.images_dir, o.masks_dir, o.val_images_dir, o.val_masks_dir, o.split, o.seed, po,
                        o.out_dir, main_rank);
  NEPHRO_CHECK(data.train.size() > 0, "train: no training patches");
  return data;
}

// The model to train: random (seeded) with the initial SAM / ResNet / UNet weights,
// or --init-checkpoint.
std::shared_ptr<glomsam::GlomSamModel> initial_model(const GlomSamTrainOptions& o) {
  auto model = glomsam::GlomSamModel::create(o.config, o.seed);
  if (!o.init_checkpoint.empty()) return glomsam::GlomSamModel::load(o.init_checkpoint, o.config);
  model->load_initial_weights(o.sam_checkpoint, o.resnet_checkpoint, o.unet_checkpoint);
  return model;
}

// --resume: the weights, the optimiser state, the history and the early-stopping
// state of last.pth.
RunProgress restore_last(GlomSamRun& run, TrainSummary& summary) {
  const std::string& last_path = run.last_path;
  NEPHRO_CHECK(fs::exists(last_path), "--resume: no checkpoint ", last_path);
  Value root = checkpoint::load_pickle_file(last_path);
  checkpoint::StateDict sd = checkpoint::state_dict_from_value(root, last_path);
  checkpoint::bind_state_dict(run.mod, sd, last_path, {{}, {}, /*share_storage=*/false});
  const Value* ov = root.find("optimizer");
  NEPHRO_CHECK(ov, last_path, ": no 'optimizer' entry");
  restore_optimizer(run.opt, run.params, *ov, last_path);
  RunProgress p;
  p.start_epoch = static_cast<int64_t>(num(root.find("epoch"))) + 1;
  summary.history = history_from(root.find("history"));
  summary.best_epoch = static_cast<int64_t>(num(root.find("best_epoch")));
  summary.best_val_dice = root.find("best_val_dice") ? num(root.find("best_val_dice")) : -1.0;
  p.bad_epochs = static_cast<int64_t>(num(root.find("bad_epochs")));
  summary.early_stopped = num(root.find("early_stopped")) != 0.0;
  if (run.main_rank()) log_info("resuming from ", last_path, " at epoch ", p.start_epoch);
  return p;
}

// Same plan everywhere, then rank 0's weights everywhere (initial weights are already
// identical for one seed and one last.pth; the broadcast makes it so by construction).
void align_ranks(GlomSamRun& run, int64_t start_epoch, int64_t n) {
  const GlomSamTrainOptions& o = run.o;
  check_same_plan(run.comm, {{"start epoch", start_epoch}, {"training patches", n}, {"batch size", o.batch_size},
                             {"epochs", o.epochs}, {"seed", static_cast<int64_t>(o.seed)},
                             {"max batches", o.max_batches_per_epoch}});
  broadcast_state(run.mod, run.comm);
  if (run.main_rank())
    log_info("data-parallel: ", run.world(), " ranks x batch ", o.batch_size, " = global batch ",
             run.world() * o.batch_size);
}

// Sums of the training loss terms (total, BCE, Dice, Boundary DoU) over an epoch's steps.
struct EpochLosses {
  double sums[4] = {0, 0, 0, 0};
  int64_t batches = 0, images_seen = 0;
};

// One optimiser step on this rank's share of the global batch [s, e) of `order`.
void train_step(GlomSamRun& run, const PatchSet& train, const std::vector<int64_t>& order, int64_t s, int64_t e,
                std::mt19937_64& rng, EpochLosses& acc) {
  const GlomSamTrainOptions& o = run.o;
  const StepShare part = step_share(s, e, o.batch_size, run.comm.rank());
  // Jitter for the whole global batch, drawn in order, so that every rank (and one
  // process with the global batch) consumes the generator alike.
  std::vector<Jitter> jitter;
  if (!o.auto_box) jitter = draw_jitters(e - s, o.box_jitter, rng);
  at::Tensor idx = at::tensor(std::vector<int64_t>(order.begin() + part.begin, order.begin() + part.end), at::kLong);
  at::Tensor images = to_input(train.images.index_select(0, idx));
  at::Tensor masks = train.masks.index_select(0, idx).to(at::kLong);
  at::Tensor boxes = o.auto_box ? at::Tensor() : boxes_with(masks, jitter.data() + (part.begin - s));
  run.opt.zero_grad();
  at::Tensor logits = run.mod.forward(images, boxes);
  if (run.world() == 1) {
    GlomSamLossTerms loss = glomsam_loss(logits, masks, run.loss);
    loss.total.backward();
    run.opt.step();
    acc.sums[0] += loss.total.item<double>();
    acc.sums[1] += loss.bce.item<double>();
    acc.sums[2] += loss.dice.item<double>();
    acc.sums[3] += loss.bdou.item<double>();
  } else {
    const double share = part.idle ? 0.0 : static_cast<double>(part.end - part.begin) / static_cast<double>(e - s);
    ShardedLossTerms loss = sharded_glomsam_loss(logits, masks, run.loss, share, run.comm);
    loss.local.backward();
    sync_step(run.params, run.mod, run.comm, share);
    run.opt.step();
    acc.sums[0] += loss.total;
    acc.sums[1] += loss.bce;
    acc.sums[2] += loss.dice;
    acc.sums[3] += loss.bdou;
  }
}

// The training steps of one epoch (learning rate of the schedule, epoch order from
// the seed, at most max_batches_per_epoch steps).
EpochLosses train_epoch(GlomSamRun& run, const PatchSet& train, int64_t epoch) {
  const GlomSamTrainOptions& o = run.o;
  const double lr = lr_at(o, epoch);
  for (auto& group : run.opt.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
  run.mod.train();
  if (o.freeze_batchnorm) freeze_batchnorm(run.mod);
  std::mt19937_64 rng = epoch_rng(o.seed, epoch, 1);
  const int64_t n = static_cast<int64_t>(train.size());
  const auto order = permutation(n, rng);  // the same on every rank
  const int64_t global_batch = o.batch_size * run.world();
  EpochLosses acc;
  for (int64_t s = 0; s < n; s += global_batch) {
    if (o.max_batches_per_epoch > 0 && acc.batches >= o.max_batches_per_epoch) break;
    const int64_t e = std::min(n, s + global_batch);
    train_step(run, train, order, s, e, rng, acc);
    ++acc.batches;
    acc.images_seen += e - s;
  }
  return acc;
}

// Rank 0's early-stopping decision and best epoch, broadcast after each epoch.
void broadcast_status(Communicator& comm, TrainSummary& summary, bool main_rank) {
  if (main_rank) {
    at::Tensor status = at::tensor({summary.early_stopped ? 1.0 : 0.0, static_cast<double>(summary.best_epoch),
                                    summary.best_val_dice}, at::kDouble);
    comm.broadcast({status});
    return;
  }
  at::Tensor status = at::zeros({3}, at::kDouble);
  comm.broadcast({status});
  summary.early_stopped = status[0].item<double>() != 0.0;
  summary.best_epoch = static_cast<int64_t>(status[1].item<double>());
  summary.best_val_dice = status[2].item<double>();
}

// Best epoch and early stopping after the validation of epoch r.
void update_best(EpochRecord& r, TrainSummary& summary, RunProgress& progress, int64_t patience) {
  if (r.val.dice > summary.best_val_dice) {
    summary.best_val_dice = r.val.dice;
    summary.best_epoch = r.epoch;
    r.best = true;
    progress.bad_epochs = 0;
  } else {
    ++progress.bad_epochs;
  }
  summary.history.push_back(r);
  if (patience > 0 && progress.bad_epochs >= patience) summary.early_stopped = true;
}

// best.pth (when r is the best epoch so far) and last.pth (always).
void save_checkpoints(GlomSamRun& run, const EpochRecord& r, const TrainSummary& summary,
                      const RunProgress& progress) {
  const GlomSamTrainOptions& o = run.o;
  const checkpoint::StateDict sd = models::glomsam::reference_state_dict(run.mod);
  if (r.best) {
    checkpoint::save_pickle_file(run.best_path,
                                 checkpoint::make_dict({{"model", checkpoint::make_state_dict_value(sd)},
                                                        {"epoch", checkpoint::make_int(r.epoch)},
                                                        {"val_dice", checkpoint::make_float(r.val.dice)},
                                                        {"config", checkpoint::make_string(o.config.to_json())}}));
  }
  Value early;
  early.kind = Value::Kind::kBool;
  early.b = summary.early_stopped;
  checkpoint::save_pickle_file(
      run.last_path,
      checkpoint::make_dict({{"model", checkpoint::make_state_dict_value(sd)},
                             {"optimizer", optimizer_value(run.opt, run.params, lr_at(o, r.epoch), o.weight_decay)},
                             {"epoch", checkpoint::make_int(r.epoch)},
                             {"best_epoch", checkpoint::make_int(summary.best_epoch)},
                             {"best_val_dice", checkpoint::make_float(summary.best_val_dice)},
                             {"bad_epochs", checkpoint::make_int(progress.bad_epochs)},
                             {"early_stopped", early},
                             {"seed", checkpoint::make_int(static_cast<int64_t>(o.seed))},
                             {"history", history_value(summary.history)},
                             {"config", checkpoint::make_string(o.config.to_json())}}));
}

// The plots of the history so far: log.csv and curves.png.
void write_progress_plots(const std::string& out_dir, const std::vector<EpochRecord>& history) {
  write_file_atomically(out_dir + "/log.csv", csv_of(history));
  write_curve(out_dir + "/curves.png", history);
}

// One epoch: training steps, then on rank 0 validation, checkpoints, plots and the
// log; the other ranks receive rank 0's decision. Calls o.on_epoch on rank 0.
void run_epoch(GlomSamRun& run, const Data& data, int64_t epoch, TrainSummary& summary, RunProgress& progress) {
  const GlomSamTrainOptions& o = run.o;
  const auto t0 = Clock::now();
  const double comm_before = run.comm.collective_seconds();
  const EpochLosses acc = train_epoch(run, data.train, epoch);
  const double train_seconds = seconds_since(t0);
  const double comm_seconds = run.comm.collective_seconds() - comm_before;
  summary.steps += acc.batches;
  summary.train_seconds += train_seconds;
  summary.collective_seconds += comm_seconds;
  EpochRecord r;
  r.epoch = epoch;
  r.train_loss = acc.sums[0] / static_cast<double>(acc.batches);
  r.train_bce = acc.sums[1] / static_cast<double>(acc.batches);
  r.train_dice = acc.sums[2] / static_cast<double>(acc.batches);
  r.train_bdou = acc.sums[3] / static_cast<double>(acc.batches);
  r.images_per_second = static_cast<double>(acc.images_seen) / std::max(train_seconds, 1e-9);
  if (!run.main_rank()) {
    // Rank 0 validates and writes; its decision arrives with the broadcast.
    broadcast_status(run.comm, summary, /*main_rank=*/false);
    r.seconds = seconds_since(t0);
    summary.history.push_back(r);
    return;
  }
  r.val = evaluate(run.mod, data.val, o.batch_size, o.auto_box, o.box_jitter, o.seed, run.loss,
                   o.config.mask_threshold, &r.val_loss);
  r.seconds = seconds_since(t0);
  update_best(r, summary, progress, o.patience);
  save_checkpoints(run, r, summary, progress);
  write_progress_plots(o.out_dir, summary.history);
  log_info("epoch ", epoch, "/", o.epochs, " loss ", r.train_loss, " val loss ", r.val_loss, " val Dice ",
           r.val.dice, " IoU ", r.val.iou, " (", r.seconds, " s, ", r.images_per_second, " img/s)",
           r.best ? " best" : "");
  if (run.world() > 1) {
    log_info("data-parallel: ", acc.batches, " steps in ", train_seconds, " s (",
             acc.batches / std::max(train_seconds, 1e-9), " steps/s), collectives ", comm_seconds, " s (",
             100.0 * comm_seconds / std::max(train_seconds, 1e-9), "% of training)");
    broadcast_status(run.comm, summary, /*main_rank=*/true);
  }
  if (o.on_epoch) o.on_epoch(r);
}

// After the last epoch, on rank 0: the plots again when no epoch ran now, and the
// best checkpoint on the test split.
void finish_training(GlomSamRun& run, const Data& data, int64_t start_epoch, TrainSummary& summary) {
  const GlomSamTrainOptions& o = run.o;
  // A run killed after the last epoch's last.pth but before these two files resumes
  // with no epoch left to train: write them again from the history (the same bytes
  // when they are already complete).
  if ((start_epoch > o.epochs || summary.early_stopped) && !summary.history.empty())
    write_progress_plots(o.out_dir, summary.history);
  if (summary.early_stopped) log_info("early stopping: no val Dice gain for ", o.patience, " epochs");
  if (data.test.size() > 0 && fs::exists(run.best_path)) {
    checkpoint::bind_state_dict(run.mod, checkpoint::load_state_dict(run.best_path), run.best_path,
                                {{}, {}, /*share_storage=*/false});
    double test_loss = 0;
    summary.test = evaluate(run.mod, data.test, o.batch_size, o.auto_box, o.box_jitter, o.seed + 1, run.loss,
                            o.config.mask_threshold, &test_loss);
    log_info("test (best epoch ", summary.best_epoch, "): Dice ", summary.test.dice, " IoU ", summary.test.iou,
             " recall ", summary.test.recall, " accuracy ", summary.test.accuracy_percent, "%");
  }
}

}  // namespace

int64_t checkpoint_epoch(const std::string& path) {
  Value root = checkpoint::load_pickle_file(path);
  const Value* e = root.find("epoch");
  NEPHRO_CHECK(e && e->kind == Value::Kind::kInt, path, ": no integer 'epoch' entry");
  return e->i;
}

TrainSummary train_glomsam(const GlomSamTrainOptions& o) {
  check_glomsam_options(o);
  // Rendezvous first: a missing peer fails before any data is read.
  const std::shared_ptr<Communicator> comm = Communicator::connect(o.distributed);
  const bool main_rank = comm->is_main();
  const Data data = load_glomsam_data(o, main_rank);
  const std::shared_ptr<glomsam::GlomSamModel> model = initial_model(o);
  const std::shared_ptr<models::glomsam::GlomSamImpl> mod = glomsam::trainer_access::module_of(*model);
  NEPHRO_CHECK(o.lr_schedule == "constant" || o.lr_schedule == "cosine",
               "train: lr schedule must be constant or cosine, got '", o.lr_schedule, "'");
  mod->freeze(o.freeze_unet, /*freeze_vit=*/!o.train_vit);
  const std::vector<at::Tensor> params = mod->unique_parameters();
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  // Ablation no_boundary_loss (recorded in the config the checkpoints store).
  GlomSamLossOptions loss_options = o.loss;
  if (!o.config.boundary_loss) loss_options.bdou_weight = 0.0;
  GlomSamRun run{o, *comm, *mod, params, opt, loss_options, o.out_dir + "/last.pth", o.out_dir + "/best.pth"};
  if (o.resume) NEPHRO_CHECK(fs::exists(run.last_path), "--resume: no checkpoint ", run.last_path);
  write_split(o.out_dir, data, main_rank);

  TrainSummary summary;
  summary.best_checkpoint = run.best_path;
  summary.last_checkpoint = run.last_path;
  summary.rank = comm->rank();
  summary.world_size = comm->world_size();
  RunProgress progress;
  if (o.resume) progress = restore_last(run, summary);
  if (run.world() > 1) align_ranks(run, progress.start_epoch, static_cast<int64_t>(data.train.size()));
  for (int64_t epoch = progress.start_epoch; epoch <= o.epochs && !summary.early_stopped; ++epoch)
    run_epoch(run, data, epoch, summary, progress);
  if (!main_rank) {
    comm->barrier();  // rank 0 evaluates the test split
    return summary;
  }
  finish_training(run, data, progress.start_epoch, summary);
  comm->barrier();
  return summary;
}

TrainSummary train_unet(const UNetTrainOptions& o) {
  NEPHRO_CHECK(!o.out_dir.empty(), "train-unet: --out is required");
  NEPHRO_CHECK(o.epochs > 0 && o.batch_size > 0, "train-unet: epochs and batch size must be positive");
  NEPHRO_CHECK(o.input_size > 0, "train-unet: --input-size must be positive (got ", o.input_size, ")");
  NEPHRO_CHECK(!o.features.empty(), "train-unet: --features needs at least one width");
  for (int64_t f : o.features) NEPHRO_CHECK(f > 0, "train-unet: --features widths must be positive (got ", f, ")");
  check_optimizer_options("train-unet", o.lr, 0.0);
  const std::shared_ptr<Communicator> comm = Communicator::connect(o.distributed);
  const int64_t world = comm->world_size();
  const bool main_rank = comm->is_main();
  PatchOptions po;
  po.model_size = o.input_size;
  po.patch_size = 2 * o.input_size;  // the GlomSAM wrapper feeds the UNet img_size / 2
  Data data = load_data(o.images_dir, o.masks_dir, o.val_images_dir, o.val_masks_dir, o.split, o.seed, po,
                        o.out_dir, main_rank);
  at::manual_seed(o.seed);
  models::UNetOptions uo;
  uo.features = o.features;
  models::UNet unet(uo);
  torch::optim::Adam opt(unet->parameters(), torch::optim::AdamOptions(o.lr));
  write_split(o.out_dir, data, main_rank);
  TrainSummary summary;
  summary.best_checkpoint = o.out_dir + "/best.pth";
  summary.last_checkpoint = o.out_dir + "/last.pth";
  summary.rank = comm->rank();
  summary.world_size = world;
  int64_t bad = 0;
  const int64_t n = static_cast<int64_t>(data.train.size());
  const std::vector<at::Tensor> params = unet->parameters();
  if (world > 1) {
    check_same_plan(*comm, {{"training patches", n}, {"batch size", o.batch_size}, {"epochs", o.epochs},
                            {"seed", static_cast<int64_t>(o.seed)}, {"max batches", o.max_batches_per_epoch}});
    broadcast_state(*unet, *comm);
  }
  const int64_t global_batch = o.batch_size * world;
  auto save = [&](const std::string& path, int64_t epoch) {
    checkpoint::save_pickle_file(
        path, checkpoint::make_dict({{"state_dict", checkpoint::make_state_dict_value(
                                                        models::glomsam::reference_state_dict(*unet))},
                                     {"epoch", checkpoint::make_int(epoch)}}));
  };
  for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto t0 = Clock::now();
    unet->train();
    std::mt19937_64 rng = epoch_rng(o.seed, epoch, 2);
    const auto order = permutation(n, rng);
    double sum = 0;
    int64_t batches = 0;
    const double comm_before = comm->collective_seconds();
    for (int64_t s = 0; s < n; s += global_batch) {
      if (o.max_batches_per_epoch > 0 && batches >= o.max_batches_per_epoch) break;
      const int64_t e = std::min(n, s + global_batch);
      const StepShare part = step_share(s, e, o.batch_size, comm->rank());
      at::Tensor idx =
          at::tensor(std::vector<int64_t>(order.begin() + part.begin, order.begin() + part.end), at::kLong);
      at::Tensor x = to_input(data.train.images.index_select(0, idx));
      at::Tensor y = data.train.masks.index_select(0, idx).to(at::kLong);
      opt.zero_grad();
      at::Tensor logits = unet->forward(x);
      at::Tensor loss = bce_with_logits_loss(logits, y) + dice_loss(logits, y);
      if (world == 1) {
        loss.backward();
        opt.step();
        sum += loss.item<double>();
      } else {
        // BCE (pixel mean) and Dice (image mean) are means over images of one size: the
        // global batch's loss is the share-weighted sum of the ranks' losses.
        const double share =
            part.idle ? 0.0 : static_cast<double>(part.end - part.begin) / static_cast<double>(e - s);
        at::Tensor local = loss * share;
        at::Tensor value = local.detach().clone().reshape({1});
        local.backward();
        sync_step(params, *unet, *comm, share, {value});
        opt.step();
        sum += value.item<double>();
      }
      ++batches;
    }
    summary.steps += batches;
    summary.train_seconds += seconds_since(t0);
    summary.collective_seconds += comm->collective_seconds() - comm_before;
    EpochRecord r;
    r.epoch = epoch;
    r.train_loss = sum / static_cast<double>(std::max<int64_t>(batches, 1));
    if (!main_rank) {
      at::Tensor stop = at::zeros({1}, at::kLong);
      comm->broadcast({stop});
      r.seconds = seconds_since(t0);
      summary.history.push_back(r);
      if (stop.item<int64_t>() != 0) {
        summary.early_stopped = true;
        break;
      }
      continue;
    }
    {
      at::NoGradGuard no_grad;
      unet->eval();
      MetricAccumulator acc(0.0);
      double vl = 0;
      for (int64_t i = 0; i < static_cast<int64_t>(data.val.size()); ++i) {
        at::Tensor x = to_input(data.val.images.slice(0, i, i + 1));
        at::Tensor y = data.val.masks.slice(0, i, i + 1).to(at::kLong);
        at::Tensor logits = unet->forward(x);
        acc.add_batch(logits, y);
        vl += (bce_with_logits_loss(logits, y) + dice_loss(logits, y)).item<double>();
      }
      r.val = acc.result();
      r.val_loss = vl / static_cast<double>(std::max<size_t>(data.val.size(), 1));
    }
    r.seconds = seconds_since(t0);
    if (r.val.dice > summary.best_val_dice) {
      summary.best_val_dice = r.val.dice;
      summary.best_epoch = epoch;
      r.best = true;
      bad = 0;
      save(summary.best_checkpoint, epoch);
    } else {
      ++bad;
    }
    summary.history.push_back(r);
    save(summary.last_checkpoint, epoch);
    write_file_atomically(o.out_dir + "/log.csv", csv_of(summary.history));
    write_curve(o.out_dir + "/curves.png", summary.history);
    log_info("unet epoch ", epoch, "/", o.epochs, " loss ", r.train_loss, " val Dice ", r.val.dice,
             r.best ? " best" : "");
    if (o.on_epoch) o.on_epoch(r);
    const bool stop = o.patience > 0 && bad >= o.patience;
    if (world > 1) {
      at::Tensor flag = at::full({1}, stop ? 1 : 0, at::kLong);
      comm->broadcast({flag});
    }
    if (stop) {
      summary.early_stopped = true;
      break;
    }
  }
  comm->barrier();
  return summary;
}

}  // namespace nephroseg::train

// Ref: GlomSAM MyDataset.py (pairing, binarisation, resize)
#include "nephroseg/train/dataset.h"

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include "nephroseg/core/error.h"
#include "nephroseg/io/image.h"

namespace nephroseg::train {

namespace fs = std::filesystem;

namespace {

std::string join_problems(const std::vector<std::string>& problems) {
  std::ostringstream out;
  out << problems.size() << " problem(s) in the training data:";
  for (const auto& p : problems) out << "\n  - " << p;
  return out.str();
}

cv::Mat binarize(const cv::Mat& raw) {
  std::vector<cv::Mat> ch;
  cv::split(raw, ch);
  cv::Mat mx = ch[0].clone();
  for (size_t i = 1; i < ch.size(); ++i) cv::max(mx, ch[i], mx);
  double lo = 0, hi = 0;
  cv::minMaxLoc(mx, &lo, &hi);
  const double thr = hi <= 1.0 ? 0.0 : 127.0;  // 0/1 masks vs 0/255 (or coloured) masks
  cv::Mat out;
  cv::compare(mx, thr, out, cv::CMP_GT);  // 0 / 255
  return out / 255;
}

at::Tensor mat_to_tensor(const cv::Mat& m) {
  cv::Mat c = m.isContinuous() ? m : m.clone();
  return at::from_blob(c.data, {c.rows, c.cols, c.channels()}, at::kByte).clone();
}

}  // namespace

at::Tensor read_binary_mask(const std::string& path) {
  cv::Mat raw = io::read_image_raw(path);
  if (raw.depth() != CV_8U) {
    cv::Mat tmp;
    raw.convertTo(tmp, CV_32F);
    cv::Mat m = binarize(tmp);
    cv::Mat m8;
    m.convertTo(m8, CV_8U);
    return mat_to_tensor(m8).squeeze(2);
  }
  return mat_to_tensor(binarize(raw)).squeeze(2);  // [H, W] {0,1}
}

at::Tensor read_rgb(const std::string& path) { return mat_to_tensor(io::read_image_rgb(path)); }

std::string describe_data_problems(const std::vector<std::string>& problems) {
  return join_problems(problems);
}

std::vector<SamplePair> pair_folders(const std::string& images_dir, const std::string& masks_dir,
                                     std::vector<std::string>* collect) {
  std::vector<std::string> problems;
  std::error_code ec;
  if (!fs::is_directory(images_dir, ec)) NEPHRO_FAIL("image folder '", images_dir, "' does not exist");
  if (!fs::is_directory(masks_dir, ec)) NEPHRO_FAIL("mask folder '", masks_dir, "' does not exist");
  const auto images = io::list_image_files(images_dir);
  const auto masks = io::list_image_files(masks_dir);
  if (images.empty()) problems.push_back("image folder '" + images_dir + "' holds no image files");
  if (masks.empty()) problems.push_back("mask folder '" + masks_dir + "' holds no image files");
  std::map<std::string, std::string> mask_by_stem;
  for (const auto& m : masks) {
    const std::string stem = io::file_stem(m);
    if (mask_by_stem.count(stem)) {
      problems.push_back("two masks share the name '" + stem + "': " + mask_by_stem[stem] + " and " + m);
    }
    mask_by_stem[stem] = m;
  }
  std::vector<SamplePair> pairs;
  for (const auto& im : images) {
    const std::string stem = io::file_stem(im);
    auto it = mask_by_stem.find(stem);
    if (it == mask_by_stem.end()) {
      problems.push_back("image '" + im + "' has no mask named '" + stem + ".*' in " + masks_dir);
      continue;
    }
    pairs.push_back({stem, im, it->second});
  }
  if (collect) {
    collect->insert(collect->end(), problems.begin(), problems.end());
  } else if (!problems.empty()) {
    NEPHRO_FAIL(join_problems(problems));
  }
  return pairs;
}

void validate_pairs(const std::vector<SamplePair>& pairs, std::vector<std::string>* collect) {
  std::vector<std::string> problems;
  for (const auto& p : pairs) {
    cv::Size isz, msz;
    try {
      cv::Mat im = io::read_image_raw(p.image);
      isz = im.size();
    } catch (const std::exception& e) {
      problems.push_back("unreadable image '" + p.image + "': " + e.what());
      continue;
    }
    try {
      cv::Mat m = io::read_image_raw(p.mask);
      msz = m.size();
    } catch (const std::exception& e) {
      problems.push_back("unreadable mask '" + p.mask + "': " + e.what());
      continue;
    }
    if (isz != msz) {
      std::ostringstream s;
      s << "size mismatch for '" << p.name << "': image " << isz.width << "x" << isz.height
        << ", mask " << msz.width << "x" << msz.height;
      problems.push_back(s.str());
    }
  }
  if (collect) {
    collect->insert(collect->end(), problems.begin(), problems.end());
  } else if (!problems.empty()) {
    NEPHRO_FAIL(join_problems(problems));
  }
}

PatchSet make_patches(const std::vector<SamplePair>& pairs, const PatchOptions& options) {
  const int64_t S = options.model_size;
  const int64_t P = options.patch_size > 0 ? options.patch_size : S;
  const int64_t stride = options.stride > 0 ? options.stride : P;
  NEPHRO_CHECK(S > 0 && P > 0, "make_patches: sizes must be positive");
  std::vector<at::Tensor> images, masks;
  PatchSet set;
  auto starts = [&](int64_t len) {
    std::vector<int64_t> s{0};
    for (int64_t p = stride; p + P < len; p += stride) s.push_back(p);
    if (len > P && s.back() != len - P) s.push_back(len - P);
    return s;
  };
  for (const auto& pair : pairs) {
    cv::Mat rgb = io::read_image_rgb(pair.image);
    cv::Mat mask;
    {
      at::Tensor m = read_binary_mask(pair.mask);
      mask = cv::Mat(static_cast<int>(m.size(0)), static_cast<int>(m.size(1)), CV_8UC1, m.data_ptr()).clone();
    }
    NEPHRO_CHECK(rgb.size() == mask.size(), "size mismatch for '", pair.name, "'");
    // Images smaller than a patch are resized up to it.
    if (rgb.rows < P || rgb.cols < P) {
      const int w = static_cast<int>(std::max<int64_t>(P, rgb.cols));
      const int h = static_cast<int>(std::max<int64_t>(P, rgb.rows));
      cv::resize(rgb, rgb, cv::Size(w, h), 0, 0, cv::INTER_LINEAR);
      cv::resize(mask, mask, cv::Size(w, h), 0, 0, cv::INTER_NEAREST);
    }
    for (int64_t y : starts(rgb.rows)) {
      for (int64_t x : starts(rgb.cols)) {
        cv::Rect r(static_cast<int>(x), static_cast<int>(y), static_cast<int>(P), static_cast<int>(P));
        cv::Mat pi = rgb(r).clone(), pm = mask(r).clone();
        if (P != S) {
          cv::resize(pi, pi, cv::Size(static_cast<int>(S), static_cast<int>(S)), 0, 0, cv::INTER_AREA);
          cv::resize(pm, pm, cv::Size(static_cast<int>(S), static_cast<int>(S)), 0, 0, cv::INTER_NEAREST);
        }
        images.push_back(mat_to_tensor(pi).permute({2, 0, 1}));  // [3, S, S]
        masks.push_back(mat_to_tensor(pm).permute({2, 0, 1}));   // [1, S, S]
        set.names.push_back(pair.name + "@" + std::to_string(y) + "," + std::to_string(x));
      }
    }
  }
  if (!images.empty()) {
    set.images = at::stack(images);
    set.masks = at::stack(masks);
  } else {
    set.images = at::empty({0, 3, S, S}, at::kByte);
    set.masks = at::empty({0, 1, S, S}, at::kByte);
  }
  return set;
}

Split split_pairs(const std::vector<SamplePair>& pairs, const std::string& ratio, uint64_t seed) {
  std::vector<double> parts;
  std::stringstream ss(ratio);
  std::string tok;
  while (std::getline(ss, tok, ':')) {
    try {
      parts.push_back(std::stod(tok));
    } catch (...) {
      NEPHRO_FAIL("split '", ratio, "': expected numbers like 8:1:1");
    }
  }
  NEPHRO_CHECK(parts.size() == 2 || parts.size() == 3, "split '", ratio,
               "': expected train:val or train:val:test");
  if (parts.size() == 2) parts.push_back(0.0);
  const double total = parts[0] + parts[1] + parts[2];
  NEPHRO_CHECK(total > 0 && parts[0] > 0 && parts[1] >= 0 && parts[2] >= 0, "split '", ratio, "': invalid ratio");
  std::vector<size_t> idx(pairs.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 rng(seed);
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[rng() % i]);  // Fisher-Yates
  const size_t n = pairs.size();
  size_t n_val = static_cast<size_t>(std::llround(n * parts[1] / total));
  size_t n_test = static_cast<size_t>(std::llround(n * parts[2] / total));
  if (parts[1] > 0 && n_val == 0 && n >= 2) n_val = 1;
  if (parts[2] > 0 && n_test == 0 && n >= 3) n_test = 1;
  NEPHRO_CHECK(n_val + n_test < n, "split '", ratio, "' leaves no training images out of ", n);
  Split s;
  for (size_t i = 0; i < n; ++i) {
    const auto& p = pairs[idx[i]];
    if (i < n_val) s.val.push_back(p);
    else if (i < n_val + n_test) s.test.push_back(p);
    else s.train.push_back(p);
  }
  return s;
}

}  // namespace nephroseg::train

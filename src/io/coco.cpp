#include "nephroseg/io/coco.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/geojson.h"

namespace nephroseg::io {

CocoRle rle_encode(const cv::Mat& mask) {
  NEPHRO_CHECK(!mask.empty() && mask.channels() == 1, "rle_encode: needs a single-channel mask");
  cv::Mat bin;
  cv::compare(mask, 0, bin, cv::CMP_NE);
  CocoRle rle;
  rle.height = bin.rows;
  rle.width = bin.cols;
  uint8_t current = 0;
  uint32_t run = 0;
  for (int x = 0; x < bin.cols; ++x)
    for (int y = 0; y < bin.rows; ++y) {
      const uint8_t v = bin.at<uint8_t>(y, x) ? 1 : 0;
      if (v != current) {
        rle.counts.push_back(run);
        run = 0;
        current = v;
      }
      ++run;
    }
  rle.counts.push_back(run);
  return rle;
}

cv::Mat rle_decode(const CocoRle& rle) {
  NEPHRO_CHECK(rle.height > 0 && rle.width > 0, "RLE has an empty size");
  uint64_t total = 0;
  for (uint32_t c : rle.counts) total += c;
  NEPHRO_CHECK(total == static_cast<uint64_t>(rle.height) * rle.width, "RLE counts add up to ", total,
               " pixels, size ", rle.height, "x", rle.width, " needs ",
               static_cast<uint64_t>(rle.height) * rle.width);
  cv::Mat out = cv::Mat::zeros(rle.height, rle.width, CV_8U);
  uint64_t pos = 0;
  for (size_t i = 0; i < rle.counts.size(); ++i) {
    if (i % 2 == 1)
      for (uint64_t k = pos; k < pos + rle.counts[i]; ++k)
        out.at<uint8_t>(static_cast<int>(k % rle.height), static_cast<int>(k / rle.height)) = 255;
    pos += rle.counts[i];
  }
  return out;
}

std::string rle_counts_to_string(const std::vector<uint32_t>& counts) {
  std::string out;
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t value = counts[i];
    if (i > 2) value -= static_cast<int64_t>(counts[i - 2]);  // delta to the run of the same kind
    for (;;) {
      int chunk = static_cast<int>(value & 0x1f);
      value >>= 5;  // arithmetic shift keeps the sign
      const bool last = (chunk & 0x10) ? value == -1 : value == 0;
      if (!last) chunk |= 0x20;
      out += static_cast<char>(chunk + 48);
      if (last) break;
    }
  }
  return out;
}

std::vector<uint32_t> rle_counts_from_string(const std::string& s) {
  std::vector<uint32_t> counts;
  size_t p = 0;
  while (p < s.size()) {
    int64_t value = 0;
    int shift = 0;
    for (;;) {
      NEPHRO_CHECK(p < s.size(), "compressed RLE string ends inside a number");
      const int chunk = static_cast<unsigned char>(s[p++]) - 48;
      NEPHRO_CHECK(chunk >= 0 && chunk < 64, "compressed RLE string has an invalid character");
      value |= static_cast<int64_t>(chunk & 0x1f) << shift;
      shift += 5;
      if (!(chunk & 0x20)) {
        if (chunk & 0x10) value |= -(static_cast<int64_t>(1) << shift);  // sign-extend
        break;
      }
    }
    if (counts.size() > 2) value += counts[counts.size() - 2];
    NEPHRO_CHECK(value >= 0, "compressed RLE string decodes to a negative run");
    counts.push_back(static_cast<uint32_t>(value));
  }
  return counts;
}

double rle_area(const CocoRle& rle) {
  double a = 0;
  for (size_t i = 1; i < rle.counts.size(); i += 2) a += rle.counts[i];
  return a;
}

void write_coco(const std::string& path, const std::vector<CocoImage>& images, const CocoWriteOptions& options) {
  nlohmann::json jimages = nlohmann::json::array(), janns = nlohmann::json::array();
  int ann_id = 1;
  for (size_t i = 0; i < images.size(); ++i) {
    const cv::Mat& labels = images[i].labels;
    NEPHRO_CHECK(!labels.empty() && labels.channels() == 1, "write_coco: image '", images[i].file_name,
                 "' has no single-channel label image");
    cv::Mat l32;
    labels.convertTo(l32, CV_32S);
    const int image_id = static_cast<int>(i) + 1;
    jimages.push_back({{"id", image_id}, {"file_name", images[i].file_name}, {"width", l32.cols},
                       {"height", l32.rows}});
    std::map<int, bool> present;
    for (int y = 0; y < l32.rows; ++y)
      for (int x = 0; x < l32.cols; ++x)
        if (l32.at<int>(y, x) > 0) present[l32.at<int>(y, x)] = true;
    for (const auto& [label, unused] : present) {
      (void)unused;
      cv::Mat m = l32 == label;
      const CocoRle rle = rle_encode(m);
      const cv::Rect box = cv::boundingRect(m);
      nlohmann::json seg = {{"size", {rle.height, rle.width}}};
      if (options.compressed) seg["counts"] = rle_counts_to_string(rle.counts);
      else seg["counts"] = rle.counts;
      janns.push_back({{"id", ann_id++},
                       {"image_id", image_id},
                       {"category_id", options.category_id},
                       {"segmentation", seg},
                       {"area", rle_area(rle)},
                       {"bbox", {box.x, box.y, box.width, box.height}},
                       {"iscrowd", 0}});
    }
  }
  nlohmann::json doc = {{"images", jimages},
                        {"annotations", janns},
                        {"categories", {{{"id", options.category_id}, {"name", options.category_name}}}}};
  write_file_atomically(path, doc.dump() + "\n");
}

std::vector<CocoImage> read_coco(const std::string& path) {
  std::ifstream in(path);
  NEPHRO_CHECK(in.good(), "cannot open COCO file '", path, "'");
  nlohmann::json doc;
  try {
    in >> doc;
  } catch (const std::exception& e) {
    NEPHRO_FAIL("COCO file '", path, "' is not valid JSON: ", e.what());
  }
  std::vector<CocoImage> images;
  std::map<int64_t, size_t> index;
  try {
    for (const auto& im : doc.at("images")) {
      CocoImage ci;
      ci.file_name = im.value("file_name", "");
      ci.labels = cv::Mat::zeros(im.at("height").get<int>(), im.at("width").get<int>(), CV_32S);
      index[im.at("id").get<int64_t>()] = images.size();
      images.push_back(std::move(ci));
    }
    std::map<size_t, int> next_label;
    for (const auto& ann : doc.value("annotations", nlohmann::json::array())) {
      auto it = index.find(ann.at("image_id").get<int64_t>());
      NEPHRO_CHECK(it != index.end(), "COCO file '", path, "': annotation ", ann.value("id", -1),
                   " names an unknown image_id");
      CocoImage& ci = images[it->second];
      const int label = ++next_label[it->second];
      const auto& seg = ann.at("segmentation");
      cv::Mat m;
      if (seg.is_object()) {
        CocoRle rle;
        rle.height = seg.at("size")[0].get<int>();
        rle.width = seg.at("size")[1].get<int>();
        const auto& c = seg.at("counts");
        rle.counts = c.is_string() ? rle_counts_from_string(c.get<std::string>())
                                   : c.get<std::vector<uint32_t>>();
        NEPHRO_CHECK(rle.height == ci.labels.rows && rle.width == ci.labels.cols, "COCO file '", path,
                     "': annotation size differs from its image size");
        m = rle_decode(rle);
      } else {
        // Polygons [x0, y0, x1, y1, ...] in COCO's pixel-corner convention.
        PolygonObject obj;
        for (const auto& poly : seg) {
          std::vector<cv::Point2d> ring;
          for (size_t k = 0; k + 1 < poly.size(); k += 2)
            ring.emplace_back(poly[k].get<double>(), poly[k + 1].get<double>());
          obj.polygons.push_back({ring});
        }
        obj.label = 1;
        m = rasterize_objects({obj}, ci.labels.size()) > 0;
      }
      ci.labels.setTo(label, m);
    }
  } catch (const nlohmann::json::exception& e) {
    NEPHRO_FAIL("COCO file '", path, "' is malformed: ", e.what());
  }
  return images;
}

}  // namespace nephroseg::io

// The authors' Dice evaluation (spec §11).
#include <opencv2/core.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/dice.h"

namespace nephroseg::gbmseg {

double DiceCounts::dice() const {
  if (union_count == 0) return 0.0;
  return 2.0 * static_cast<double>(intersection) /
         static_cast<double>(union_count + intersection);
}

// Ref: tools/dice.py (per-image counts; only value 255 is foreground)
DiceCounts dice_counts(const cv::Mat& ground_truth, const cv::Mat& prediction) {
  NEPHRO_CHECK(ground_truth.type() == CV_8UC1 && prediction.type() == CV_8UC1,
               "dice_counts: masks must be single-channel 8-bit");
  NEPHRO_CHECK(ground_truth.size() == prediction.size(), "dice_counts: mask sizes differ (",
               ground_truth.rows, "x", ground_truth.cols, " vs ", prediction.rows, "x",
               prediction.cols, ")");
  DiceCounts c;
  for (int y = 0; y < ground_truth.rows; ++y) {
    const uint8_t* g = ground_truth.ptr<uint8_t>(y);
    const uint8_t* p = prediction.ptr<uint8_t>(y);
    for (int x = 0; x < ground_truth.cols; ++x) {
      const bool a = g[x] == 255, b = p[x] == 255;
      c.intersection += (a && b) ? 1 : 0;
      c.union_count += (a || b) ? 1 : 0;
    }
  }
  return c;
}

// Ref: tools/dice.py (06dae0b): the double append of non-empty-union images
DiceSummary evaluate_dice(const std::vector<cv::Mat>& ground_truths,
                          const std::vector<cv::Mat>& predictions) {
  NEPHRO_CHECK(ground_truths.size() == predictions.size(), "evaluate_dice: ",
               ground_truths.size(), " ground truths but ", predictions.size(), " predictions");
  DiceSummary s;
  double textbook_sum = 0.0, weighted_sum = 0.0;
  size_t weighted_count = 0;
  for (size_t i = 0; i < ground_truths.size(); ++i) {
    const DiceCounts c = dice_counts(ground_truths[i], predictions[i]);
    const double d = c.dice();
    s.per_image.push_back(d);
    textbook_sum += d;
    const size_t copies = c.union_count > 0 ? 2 : 1;
    weighted_sum += d * static_cast<double>(copies);
    weighted_count += copies;
  }
  if (!s.per_image.empty()) {
    s.textbook_mean = textbook_sum / static_cast<double>(s.per_image.size());
    s.authors_mean = weighted_sum / static_cast<double>(weighted_count);
  }
  s.authors_miou = s.authors_mean / (2.0 - s.authors_mean);
  return s;
}

}  // namespace nephroseg::gbmseg

// Uses one public header of the installed nephroseg: Dice and IoU of two squares that
// overlap by half (expected: dice 0.5, iou 1/3).
#include <cstdio>

#include <nephroseg/eval/metrics.h>

int main() {
  cv::Mat pred(20, 20, CV_8UC1, cv::Scalar(0)), truth(20, 20, CV_8UC1, cv::Scalar(0));
  pred(cv::Rect(0, 0, 10, 10)).setTo(255);
  truth(cv::Rect(5, 0, 10, 10)).setTo(255);
  const nephroseg::eval::MaskMetrics m = nephroseg::eval::compute_metrics(pred, truth);
  std::printf("dice %.4f iou %.4f\n", m.dice, m.iou);
  return 0;
}

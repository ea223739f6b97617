// python/io.cpp: image and mask files as numpy arrays (the library's readers and
// atomic writers), and .npy tensors.
#include "common.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"

namespace nephroseg::python {

void bind_io(py::module_& m) {
  m.def(
      "read_image",
      [](const std::string& path, int page) {
        io::ImageReadOptions o;
        o.page = page;
        cv::Mat rgb;
        {
          py::gil_scoped_release release;
          rgb = io::read_image_rgb(path, o);
        }
        return mat_to_numpy(rgb);
      },
      py::arg("path"), py::arg("page") = 0,
      "Reads an image file (PNG, JPEG, TIFF 8/16-bit, DM3/DM4) as HxWx3 uint8 RGB, as every\n"
      "CLI command reads its images (16-bit and float windowed to 8 bits).");
  m.def(
      "read_image_raw",
      [](const std::string& path, int page) {
        cv::Mat raw;
        {
          py::gil_scoped_release release;
          raw = io::read_image_raw(path, page);
        }
        return mat_to_numpy(raw);
      },
      py::arg("path"), py::arg("page") = 0,
      "Reads the stored samples as they are (HxW or HxWxC, uint8/uint16/float32): e.g. a GBMSeg\n"
      "reference mask whose raw values matter.");
  m.def(
      "read_mask",
      [](const std::string& path, int channel, double threshold) {
        io::MaskReadOptions o;
        o.channel = channel;
        o.threshold = threshold;
        cv::Mat mask;
        {
          py::gil_scoped_release release;
          mask = io::read_mask(path, o);
        }
        return mat_to_numpy(mask);
      },
      py::arg("path"), py::arg("channel") = -1, py::arg("threshold") = 127.0,
      "Reads a mask file as HxW uint8 0/255 (any channel non-zero = foreground, or\n"
      "channel > threshold).");
  m.def(
      "write_mask",
      [](const std::string& path, const py::handle& mask) {
        const cv::Mat m8 = mask_arg(mask, "mask");
        py::gil_scoped_release release;
        io::write_mask_png(path, m8);
      },
      py::arg("path"), py::arg("mask"), "Writes a HxW bool/uint8 mask as a 0/255 PNG, atomically.");
  m.def(
      "write_image",
      [](const std::string& path, const py::handle& image) {
        py::object keep;
        const cv::Mat img = image_arg(image, "image", keep, /*channels=*/0);
        py::gil_scoped_release release;
        io::write_png(path, img);
      },
      py::arg("path"), py::arg("image"), "Writes a HxWx3 RGB or HxW grey uint8 image as PNG, atomically.");
}

}  // namespace nephroseg::python

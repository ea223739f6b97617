// nephroseg/io/dm.h: Gatan DigitalMicrograph files (.dm3, .dm4), read without any
// third-party library.
//
// The format is a tree of tags. The file opens with a header (version, length of
// the root group, byte order of the data); then comes the root tag group. A group
// holds tags; a tag is either a group (type 20) or data (type 21), with a label
// (possibly empty: list entries are unnamed and addressed by index). A data tag
// carries a type description ("info": a simple type, a string, a struct of simple
// fields, or an array of simple types or of structs) and then its bytes.
//   DM3: version 3, sizes and counts are 4-byte big-endian integers.
//   DM4: version 4, sizes and counts are 8-byte big-endian integers, and every tag
//        carries its byte length after the label.
// The tag headers are always big-endian; the data are in the byte order the header
// names (1 = little-endian, what every file written on a PC uses).
//
// What is read (ImageList.<i>.ImageData):
//   * Data + DataType + Dimensions: 2-D images of the types int8, int16, int32,
//     uint8, uint16, uint32, float32, float64 and RGB(A) (types 8 and 23: 4 bytes per
//     pixel, stored B, G, R, A). Complex (3, 5, 13) and bool (14) images are refused
//     with a message naming the type. 1-D spectra and 3-D (and higher) stacks are
//     refused: nephroseg works on single 2-D micrographs (export one plane from
//     DigitalMicrograph to read a stack).
//   * Calibrations.Dimension.<0 = x, 1 = y>: Scale, Units, Origin of each axis.
//   * ImageTags."Microscope Info"."Indicated Magnification" (else "Actual
//     Magnification"), when present.
// Which image: files usually hold a small thumbnail beside the data (the root group
// "Thumbnails" lists the thumbnail's ImageList index). The reader skips the images
// named there and takes the largest remaining image (the last one on a tie), which is
// what DigitalMicrograph readers such as HyperSpy/RosettaSciIO return.
//
// Hostile files: every count, size and offset read from the file is checked (with
// overflow checks) against the file's size before anything is allocated, so a
// truncated file, a tag tree that points outside the file, or absurd dimensions
// (2^31 x 2^31) end with one nephroseg::Error naming the file, never with a crash or
// an allocation larger than the file. Group nesting is limited to 64 levels. Image
// dimensions are also held to the limits of io/image.h (kMaxImageSide,
// kMaxImagePixels). Reading allocates the file's size plus the decoded image.
//
// Thread safety: the functions are reentrant (no shared state).
#pragma once

#include <opencv2/core/mat.hpp>

#include <string>

namespace nephroseg::io {

/// Pixel type of a DM image, as stored.
enum class DmDataType { kInt8, kInt16, kInt32, kUint8, kUint16, kUint32, kFloat32, kFloat64, kRgba8 };

/// "int8", "int16", ..., "float64", "rgba8" (the spelling of the tests' HyperSpy table).
const std::string& dm_data_type_name(DmDataType type);

/// One axis of the spatial calibration, as stored (value = origin + scale * index is
/// DigitalMicrograph's convention for the calibrated coordinate).
struct DmAxis {
  double scale = 1.0;
  double origin = 0.0;
  std::string units;  ///< UTF-8, e.g. "nm", "µm", "1/nm"; empty when uncalibrated
};

struct DmImage {
  int version = 0;                ///< 3 or 4
  DmDataType data_type = DmDataType::kUint8;
  int dm_type_code = 0;           ///< ImageData.DataType as stored
  int width = 0, height = 0;      ///< Dimensions 0 and 1
  /// The samples, exact: int8 CV_8S, int16 CV_16S, int32 CV_32S, uint8 CV_8U,
  /// uint16 CV_16U, uint32 CV_64F (no 32-bit unsigned Mat type), float32 CV_32F,
  /// float64 CV_64F, rgba8 CV_8UC4 in R, G, B, A order.
  cv::Mat pixels;
  DmAxis x, y;                    ///< Calibrations.Dimension 0 and 1
  double magnification = 0.0;     ///< 0 when the file does not say
  int image_index = 0;            ///< which ImageList entry was read
};

/// True when the file starts like a DM3 or DM4 file (version 3 or 4, big-endian).
bool looks_like_dm(const std::string& bytes);

/// Reads the data image of a DM3/DM4 file. Throws nephroseg::Error naming the file for
/// unreadable, truncated, hostile or unsupported files (complex, bool, 1-D, 3-D).
DmImage read_dm(const std::string& path);
/// The same from the file's bytes (`name` appears in messages).
DmImage read_dm_bytes(const std::string& bytes, const std::string& name);

}  // namespace nephroseg::io

// The bad-input suite (issue 14): every subcommand x every input it reads x {missing,
// empty, truncated, wrong type, absurd size, wrong model, out-of-range values,
// NaN/inf}, run end to end through the built `nephroseg` binary. Each case asserts
//   * the exit code (2 for usage errors, 1 for bad input),
//   * that the first line of stderr (after any `warning:` lines: batch commands warn
//     about each failed item before the error that ends the run) is one `error:` line
//     of ours naming the problem (a substring observed from our own message; never a
//     raw library text),
//   * the wall time (no hang: under kMaxSeconds), and
//   * that the case's output folder holds no file at all (no partial output, no
//     `.tmp-` temporary).
// The inputs are written byte by byte here (PNG, PNM, zip, pickle, npy, JSON, TIFF,
// DM). Cases whose command needs a tiny model from ../shared/golden skip without it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/golden.h"

namespace fs = std::filesystem;
using nephroseg::test::binary_dir;
using nephroseg::test::have_cli;
using nephroseg::test::shared_path;
using nephroseg::test::temp_dir;

namespace {

constexpr double kMaxSeconds = 20.0;

// ---- Byte-level writers (independent of the library) ------------------------------

uint32_t crc32(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string le(uint64_t v, int n) {
  std::string s;
  for (int k = 0; k < n; ++k) s += static_cast<char>((v >> (8 * k)) & 0xFF);
  return s;
}

std::string png_chunk(const std::string& tag, const std::string& data) {
  return be32(static_cast<uint32_t>(data.size())) + tag + data + be32(crc32(tag + data));
}

// A PNG (8-bit grey or RGB) whose IDAT is zlib with stored blocks; `declared_w/h`
// may differ from the rows given (absurd headers).
std::string png(uint32_t w, uint32_t h, int channels, const std::vector<std::string>& rows) {
  std::string raw;
  for (const auto& r : rows) raw += '\0' + r;
  std::string z = "\x78\x01";
  size_t at = 0;
  do {
    const size_t n = std::min<size_t>(65535, raw.size() - at);
    const bool last = at + n == raw.size();
    z += static_cast<char>(last ? 1 : 0);
    z += le(n, 2) + le(~n & 0xFFFF, 2) + raw.substr(at, n);
    at += n;
  } while (at < raw.size());
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  z += be32((b << 16) | a);
  const std::string ihdr = be32(w) + be32(h) + std::string{8, static_cast<char>(channels == 3 ? 2 : 0), 0, 0, 0};
  return "\x89PNG\r\n\x1a\n" + png_chunk("IHDR", ihdr) + png_chunk("IDAT", z) + png_chunk("IEND", "");
}

std::string grey_png(int w, int h, int (*value)(int x, int y)) {
  std::vector<std::string> rows;
  for (int y = 0; y < h; ++y) {
    std::string r;
    for (int x = 0; x < w; ++x) r += static_cast<char>(value(x, y));
    rows.push_back(r);
  }
  return png(w, h, 1, rows);
}

std::string rgb_png(int w, int h) {
  std::vector<std::string> rows;
  for (int y = 0; y < h; ++y) {
    std::string r;
    for (int x = 0; x < w; ++x) r += std::string{static_cast<char>(x * 4), static_cast<char>(y * 5), static_cast<char>(90)};
    rows.push_back(r);
  }
  return png(w, h, 3, rows);
}

// A stored-only zip archive (PKWARE APPNOTE layout).
std::string zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, central;
  for (const auto& [name, data] : entries) {
    const uint32_t crc = crc32(data);
    const size_t local = out.size();
    out += le(0x04034b50, 4) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(crc, 4) +
           le(data.size(), 4) + le(data.size(), 4) + le(name.size(), 2) + le(0, 2) + name + data;
    central += le(0x02014b50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(crc, 4) +
               le(data.size(), 4) + le(data.size(), 4) + le(name.size(), 2) + le(0, 2) + le(0, 2) + le(0, 2) +
               le(0, 2) + le(0, 4) + le(local, 4) + name;
  }
  const size_t cd = out.size();
  out += central;
  out += le(0x06054b50, 4) + le(0, 2) + le(0, 2) + le(entries.size(), 2) + le(entries.size(), 2) +
         le(central.size(), 4) + le(cd, 4) + le(0, 2);
  return out;
}

// A .npy (version 1) of float32 with the given shape and value.
std::string npy_f4(const std::string& shape, size_t count, float value) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string data;
  for (size_t i = 0; i < count; ++i) {
    uint32_t w;
    std::memcpy(&w, &value, 4);
    data += le(w, 4);
  }
  return std::string("\x93NUMPY\x01\x00", 8) + le(header.size(), 2) + header + data;
}

void write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- The fixtures ------------------------------------------------------------------

std::string g_dir;  // fixture folder {D}

void make_fixtures(const std::string& d) {
  const std::string img = rgb_png(64, 48);
  write(d + "/img.png", img);
  // Existing outputs that are not regular files (stand-ins for /dev/null, which a
  // test must not risk): a named pipe and a folder.
  ::mkfifo((d + "/pipe.npy").c_str(), 0600);
  fs::create_directories(d + "/outdir.npy");
  write(d + "/mask.png", grey_png(64, 48, [](int, int y) { return y >= 20 && y < 28 ? 255 : 0; }));
  write(d + "/allfg.png", grey_png(64, 48, [](int, int) { return 255; }));
  write(d + "/zero.png", grey_png(64, 48, [](int, int) { return 0; }));
  write(d + "/small.png", grey_png(32, 32, [](int x, int) { return x > 10 ? 255 : 0; }));
  write(d + "/empty.png", "");
  write(d + "/trunc.png", img.substr(0, 45));
  write(d + "/text.png", "this is not an image\n");
  // Absurd sizes: headers that declare 200000 x 200000 pixels over a few bytes.
  write(d + "/huge.png", png(200000, 200000, 1, {"\x01\x02"}));
  write(d + "/huge.ppm", "P6\n200000 200000\n255\n" + std::string(64, '\x10'));
  write(d + "/trunc.tif", std::string("II*\0\x08\0\0\0\x0b\0", 10));
  write(d + "/huge.tif", std::string("II*\0\x08\0\0\0", 8) + le(4, 2) + le(256, 2) + le(4, 2) + le(1, 4) +
                              le(2000000000, 4) + le(257, 2) + le(4, 2) + le(1, 4) + le(2000000000, 4) +
                              le(258, 2) + le(3, 2) + le(1, 4) + le(8, 4) + le(273, 2) + le(4, 2) + le(1, 4) +
                              le(8, 4) + le(0, 4));
  write(d + "/trunc.dm4", std::string("\0\0\0\x04\0\0\0\0\0\0\0\x10\0\0\0\x01\x01\x00", 18));
  write(d + "/nan.ppm", "P5\n4 nan\n255\n");
  // Folders: images and masks of the same names, an empty folder.
  write(d + "/images/a.png", img);
  write(d + "/masks/a.png", read(d + "/mask.png"));
  write(d + "/masks_small/a.png", read(d + "/small.png"));
  write(d + "/masks_other/b.png", read(d + "/mask.png"));
  write(d + "/masks_trunc/a.png", img.substr(0, 45));
  // A second pair, so that --split 1:1 leaves one image for training and one for validation.
  write(d + "/images/b.png", img);
  for (const char* m : {"/masks/b.png", "/masks_small/b.png", "/masks_trunc/b.png"}) write(d + m, read(d + "/mask.png"));
  // eval folders of one image each, in which that image cannot be evaluated.
  write(d + "/ev_pred/a.png", read(d + "/mask.png"));
  write(d + "/ev_other/b.png", read(d + "/mask.png"));
  write(d + "/ev_small/a.png", read(d + "/small.png"));
  write(d + "/ev_trunc/a.png", img.substr(0, 45));
  fs::create_directories(d + "/emptydir");
  // Checkpoints.
  write(d + "/empty.pth", "");
  write(d + "/text.pth", "this is not a checkpoint\n");
  write(d + "/legacy.pth", std::string("\x80\x02}q\x00.", 6));
  const std::string empty_dict_pickle("\x80\x02}q\x00.", 6);
  const std::string good_zip = zip({{"archive/data.pkl", empty_dict_pickle}, {"archive/version", "3\n"}});
  write(d + "/nomodel.pth", good_zip);  // a valid checkpoint holding an empty dict: every key missing
  write(d + "/trunc.pth", good_zip.substr(0, good_zip.size() - 30));
  write(d + "/notorch.pth", zip({{"readme.txt", "hello"}}));
  write(d + "/compressed.pth", [&] {
    std::string z = zip({{"archive/data.pkl", empty_dict_pickle}, {"archive/version", "3\n"}});
    z[8] = 8;  // the local header says deflate ...
    const size_t cd = z.find(std::string("PK\x01\x02", 4));
    z[cd + 10] = 8;  // ... and so does the central directory
    return z;
  }());
  // .npy files (SAM's low-res mask input is [1, 40, 40] for the tiny config).
  write(d + "/empty.npy", "");
  write(d + "/text.npy", "not an npy file");
  write(d + "/wrongshape.npy", npy_f4("(1, 4, 4)", 16, 0.5f));
  write(d + "/nan.npy", npy_f4("(1, 40, 40)", 1600, std::nanf("")));
  write(d + "/trunc.npy", npy_f4("(1, 40, 40)", 100, 0.5f));
  write(d + "/huge.npy", npy_f4("(1, 100000, 100000)", 4, 0.5f));
  // Prompts JSON (sam --prompts).
  write(d + "/p_empty.json", "");
  write(d + "/p_trunc.json", "{\"img.png\": {\"points\": [[1, ");
  write(d + "/p_array.json", "[1, 2, 3]");
  write(d + "/p_nan.json", "{\"img.png\": {\"box\": [NaN, 1, 20, 30]}}");
  write(d + "/p_field.json", "{\"img.png\": {\"boxes\": [1, 1, 20, 30]}}");
  write(d + "/p_inverted.json", "{\"img.png\": {\"box\": [30, 30, 10, 10]}}");
  write(d + "/p_outside.json", "{\"img.png\": {\"box\": [100, 100, 200, 200]}}");
  write(d + "/p_huge.json", "{\"img.png\": {\"points\": [[1e308, 1e308, 1]]}}");
  write(d + "/p_label.json", "{\"img.png\": {\"points\": [[3, 4, 7]]}}");
  write(d + "/p_mask.json", "{\"img.png\": {\"box\": [1, 1, 20, 30], \"mask_input\": \"none.npy\"}}");
  write(d + "/p_type.json", "{\"img.png\": {\"points\": \"many\"}}");
  write(d + "/p_other.json", "{\"other.png\": {\"box\": [1, 1, 20, 30]}}");
  // Model config JSON.
  write(d + "/c_empty.json", "");
  write(d + "/c_trunc.json", "{\"img_size\": 16");
  write(d + "/c_type.json", "{\"encoder_depth\": \"four\"}");
  write(d + "/c_neg.json", "{\"encoder_depth\": -4}");
  write(d + "/c_array.json", "[]");
}

// ---- The table ---------------------------------------------------------------------

struct Case {
  const char* name;
  std::string args;    // {D} fixtures, {O} this case's output folder, {G} ../shared/golden
  int code;            // 2 usage, 1 bad input
  std::string expect;  // substring of the first stderr line (after "error: ")
  // Complete run records a batch command writes for a failed item (nothing else may be
  // left in the output folder).
  std::vector<std::string> records = {};
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

const std::string kSam = "sam --checkpoint {G}/models/sam_tiny.pth --model-config {G}/models/sam_tiny.json ";
const std::string kMedsam = "medsam --checkpoint {G}/models/sam_tiny.pth --model-config {G}/models/sam_tiny.json ";
const std::string kFeat =
    "features --checkpoint {G}/models/dinov2_tiny.pth --model-config {G}/models/dinov2_tiny.json --size 56 ";
const std::string kGsp = "glomsam predict --checkpoint {G}/glomsam/full_model.pth --config tiny ";
const std::string kTrain = "glomsam train --config tiny --epochs 1 --batch-size 1 --split 1:1 --out {O} ";
const std::string kUnet = "glomsam train-unet --epochs 1 --batch-size 1 --split 1:1 --out {O} ";
const std::string kMeasure = "measure --nm-per-pixel 2 --out {O} ";
const std::string kEval = "eval --out {O} ";
const std::string kSlide = "slide --mpp 1 --out {O} ";
const std::string kPhantom = "phantom --count 1 --size 256 --out {O} ";

std::vector<Case> cases() {
  std::vector<Case> t = {
      // ---- info: files
      {"info_missing", "info {D}/none.png", 1, "does not exist"},
      {"info_empty", "info {D}/empty.png", 1, "is empty (0 bytes)"},
      {"info_truncated", "info {D}/trunc.png", 1, "is truncated"},
      {"info_wrong_type", "info {D}/text.png", 1, "corrupt or unsupported format"},
      {"info_huge_png", "info {D}/huge.png", 1, "beyond the limit of 131072 pixels per side"},
      {"info_huge_ppm", "info {D}/huge.ppm", 1, "beyond the limit of 131072 pixels per side"},
      {"info_huge_tif", "info {D}/huge.tif", 1, "beyond the limit of 131072 pixels per side"},
      {"info_truncated_tif", "info {D}/trunc.tif", 1, "cannot open TIFF"},
      {"info_truncated_dm4", "info {D}/trunc.dm4", 1, "is truncated or corrupt"},
      {"info_folder", "info {D}/emptydir", 1, "does not exist"},
      {"info_checkpoint", "info {D}/nomodel.pth", 1, "corrupt or unsupported format"},
      {"info_nan_header", "info {D}/nan.ppm", 1, "malformed or truncated header"},
      // ---- measure: --mask, --image, --nm-per-pixel and the thickness options
      {"measure_no_mask_option", "measure --nm-per-pixel 2 --out {O}", 2, "--mask is required"},
      {"measure_mask_missing", kMeasure + "--mask {D}/none.png", 1, "does not exist"},
      {"measure_mask_empty", kMeasure + "--mask {D}/empty.png", 1, "is empty (0 bytes)"},
      {"measure_mask_truncated", kMeasure + "--mask {D}/trunc.png", 1, "is truncated"},
      {"measure_mask_wrong_type", kMeasure + "--mask {D}/text.png", 1, "corrupt or unsupported format"},
      {"measure_mask_huge", kMeasure + "--mask {D}/huge.png", 1, "beyond the limit"},
      {"measure_mask_huge_ppm", kMeasure + "--mask {D}/huge.ppm", 1, "beyond the limit"},
      {"measure_mask_no_background", kMeasure + "--mask {D}/allfg.png", 1, "no background pixel"},
      {"measure_mask_empty_folder", kMeasure + "--mask {D}/emptydir", 1, "no mask files"},
      {"measure_mask_checkpoint", kMeasure + "--mask {D}/nomodel.pth", 1, "corrupt or unsupported format"},
      {"measure_image_missing", kMeasure + "--mask {D}/mask.png --image {D}/none.png", 1, "does not exist"},
      {"measure_image_truncated", kMeasure + "--mask {D}/mask.png --image {D}/trunc.png", 1, "is truncated"},
      {"measure_image_size", kMeasure + "--mask {D}/mask.png --image {D}/small.png", 1, "is 32x32 but mask"},
      {"measure_nm_nan", "measure --mask {D}/mask.png --nm-per-pixel nan --out {O}", 1, "must be 'auto' or a positive, finite number"},
      {"measure_nm_inf", "measure --mask {D}/mask.png --nm-per-pixel inf --out {O}", 1, "must be 'auto' or a positive, finite number"},
      {"measure_nm_negative", "measure --mask {D}/mask.png --nm-per-pixel -2 --out {O}", 1, "must be 'auto' or a positive, finite number"},
      {"measure_nm_zero", "measure --mask {D}/mask.png --nm-per-pixel 0 --out {O}", 1, "must be 'auto' or a positive, finite number"},
      {"measure_nm_text", "measure --mask {D}/mask.png --nm-per-pixel abc --out {O}", 1, "must be 'auto' or a positive, finite number"},
      {"measure_nm_none", "measure --mask {D}/mask.png --out {O}", 1, "no pixel size for"},
      {"measure_spacing_zero", kMeasure + "--mask {D}/mask.png --spacing-px 0", 1, "sample spacing must be > 0"},
      {"measure_spacing_nan", kMeasure + "--mask {D}/mask.png --spacing-px nan", 1, "sample spacing must be > 0"},
      {"measure_tangential_nan", kMeasure + "--mask {D}/mask.png --tangential-factor nan", 1, "tangential factor must be > 1"},
      {"measure_sigma_negative", kMeasure + "--mask {D}/mask.png --smoothing-sigma -1", 1, "smoothing sigma must be >= 0"},
      {"measure_angle_range", kMeasure + "--mask {D}/mask.png --max-angle 200", 1, "max angle must be in (0, 90)"},
      {"measure_angle_nan", kMeasure + "--mask {D}/mask.png --max-angle nan", 1, "max angle must be in (0, 90)"},
      {"measure_reference_unknown", kMeasure + "--mask {D}/mask.png --reference nosuch", 1, "unknown reference range 'nosuch'"},
      {"measure_ref_inverted", kMeasure + "--mask {D}/mask.png --ref-low-nm 400 --ref-high-nm 100", 1, "must be below high"},
      {"measure_ref_method", kMeasure + "--mask {D}/mask.png --ref-low-nm 100 --ref-high-nm 400 --ref-method x", 1,
       "--ref-method must be 'oi' or 'direct'"},
      {"measure_channel_range", kMeasure + "--mask {D}/mask.png --mask-channel 7", 1, "mask channel 7 requested"},
      {"measure_threshold_nan", kMeasure + "--mask {D}/mask.png --mask-channel 0 --mask-threshold nan", 1, "mask threshold must be a number"},
      {"measure_shard_range", kMeasure + "--mask {D}/masks --shard 3/2", 1, "needs 1 <= K <= N"},
      {"measure_shard_text", kMeasure + "--mask {D}/masks --shard a/b", 1, "expected K/N"},
      // ---- eval: --pred, --truth, --images, channels, boundary ratio
      {"eval_pred_missing", kEval + "--pred {D}/none --truth {D}/masks", 1, "prediction folder"},
      {"eval_truth_missing", kEval + "--pred {D}/masks --truth {D}/none", 1, "truth folder"},
      {"eval_pred_empty_folder", kEval + "--pred {D}/emptydir --truth {D}/ev_pred", 1, "could be evaluated"},
      {"eval_truth_empty_folder", kEval + "--pred {D}/ev_pred --truth {D}/emptydir", 1, "could be evaluated"},
      {"eval_names_differ", kEval + "--pred {D}/ev_pred --truth {D}/ev_other", 1, "could be evaluated"},
      {"eval_size_differs", kEval + "--pred {D}/ev_pred --truth {D}/ev_small", 1, "could be evaluated"},
      {"eval_truth_truncated", kEval + "--pred {D}/ev_pred --truth {D}/ev_trunc", 1, "could be evaluated"},
      {"eval_pred_file", kEval + "--pred {D}/mask.png --truth {D}/masks", 1, "prediction folder"},
      {"eval_images_missing", kEval + "--pred {D}/masks --truth {D}/masks --images {D}/none", 1, "image folder"},
      {"eval_boundary_nan", kEval + "--pred {D}/masks --truth {D}/masks --boundary-ratio nan", 1, "dilation ratio must be a positive, finite number"},
      {"eval_boundary_negative", kEval + "--pred {D}/masks --truth {D}/masks --boundary-ratio -0.5", 1, "dilation ratio must be a positive, finite number"},
      {"eval_boundary_inf", kEval + "--pred {D}/masks --truth {D}/masks --boundary-ratio inf", 1, "dilation ratio must be a positive, finite number"},
      {"eval_channel_range", kEval + "--pred {D}/ev_pred --truth {D}/ev_pred --pred-channel 9", 1, "could be evaluated"},
      {"eval_truth_channel_text", kEval + "--pred {D}/masks --truth {D}/masks --truth-channel x", 2, "Could not convert"},
      {"eval_shard_zero", kEval + "--pred {D}/masks --truth {D}/masks --shard 0/2", 1, "needs 1 <= K <= N"},
      // ---- phantom: out-of-range and NaN/inf values
      {"phantom_count_zero", "phantom --count 0 --out {O}", 1, "--count must be in [1, 10000]"},
      {"phantom_count_negative", "phantom --count -3 --out {O}", 1, "--count must be in [1, 10000]"},
      {"phantom_count_huge", "phantom --count 100000000 --size 64 --out {O}", 1, "--count must be in [1, 10000]"},
      {"phantom_size_zero", "phantom --count 1 --size 0 --out {O}", 1, "phantom size must be >= 64 px"},
      {"phantom_size_text", "phantom --count 1 --size big --out {O}", 2, "Could not convert"},
      {"phantom_thickness_nan", kPhantom + "--thickness-px nan", 1, "phantom thickness must be in [2, size/6]"},
      {"phantom_thickness_negative", kPhantom + "--thickness-px -4", 1, "phantom thickness must be in [2, size/6]"},
      {"phantom_thickness_huge", kPhantom + "--thickness-px 1e9", 1, "phantom thickness must be in [2, size/6]"},
      {"phantom_nm_nan", kPhantom + "--nm-per-pixel nan", 1, "nm_per_pixel must be > 0"},
      {"phantom_nm_zero", kPhantom + "--nm-per-pixel 0", 1, "nm_per_pixel must be > 0"},
      {"phantom_shape_unknown", kPhantom + "--shape star", 1, "unknown phantom shape 'star'"},
      {"phantom_membranes_zero", kPhantom + "--membranes 0", 1, "num_membranes must be in [1, 20]"},
      {"phantom_membranes_huge", kPhantom + "--membranes 1000000", 1, "num_membranes must be in [1, 20]"},
      // ---- sam: --checkpoint, --model-config, --image, --point, --box, --mask-input, --prompts
      {"sam_checkpoint_missing", "sam --checkpoint {D}/none.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1, "SAM checkpoint not found"},
      {"sam_checkpoint_empty", "sam --checkpoint {D}/empty.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1, "is empty or truncated (0 bytes)"},
      {"sam_checkpoint_text", "sam --checkpoint {D}/text.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1, "is not a PyTorch checkpoint"},
      {"sam_checkpoint_legacy", "sam --checkpoint {D}/legacy.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1,
       "uses the legacy (pre-1.6, non-zip) torch.save format"},
      {"sam_checkpoint_truncated", "sam --checkpoint {D}/trunc.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1,
       "corrupt or truncated zip archive"},
      {"sam_checkpoint_not_torch", "sam --checkpoint {D}/notorch.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1,
       "not a torch.save checkpoint"},
      {"sam_checkpoint_compressed",
       "sam --checkpoint {D}/compressed.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1, "is compressed; torch.save writes stored records only"},
      {"sam_checkpoint_no_model", "sam --checkpoint {D}/nomodel.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1,
       "no state dict found"},
      {"sam_checkpoint_wrong_model",
       "sam --checkpoint {G}/models/dinov2_tiny.pth --model-config {G}/models/sam_tiny.json --image {D}/img.png "
       "--box 1,1,20,20 --out {O}",
       1, "does not fit the model"},
      {"sam_checkpoint_folder", "sam --checkpoint {D}/emptydir --image {D}/img.png --box 1,1,20,20 --out {O}", 1, "SAM checkpoint not found"},
      {"sam_model_type_unknown",
       "sam --checkpoint {G}/models/sam_tiny.pth --model-type vit_q --image {D}/img.png --box 1,1,20,20 --out {O}", 1,
       "unknown SAM model type 'vit_q'"},
      {"sam_config_missing",
       "sam --checkpoint {G}/models/sam_tiny.pth --model-config {D}/none.json --image {D}/img.png --box 1,1,20,20 "
       "--out {O}",
       1, "cannot open"},
      {"sam_config_empty",
       "sam --checkpoint {G}/models/sam_tiny.pth --model-config {D}/c_empty.json --image {D}/img.png --box 1,1,20,20 "
       "--out {O}",
       1, "is not valid JSON (line 1, column 1"},
      {"sam_config_truncated",
       "sam --checkpoint {G}/models/sam_tiny.pth --model-config {D}/c_trunc.json --image {D}/img.png --box 1,1,20,20 "
       "--out {O}",
       1, "is not valid JSON (line 1, column 16"},
      {"sam_config_wrong_type",
       "sam --checkpoint {G}/models/sam_tiny.pth --model-config {D}/c_type.json --image {D}/img.png --box 1,1,20,20 "
       "--out {O}",
       1, "expected an integer, got string"},
      {"sam_config_array",
       "sam --checkpoint {G}/models/sam_tiny.pth --model-config {D}/c_array.json --image {D}/img.png --box 1,1,20,20 "
       "--out {O}",
       1, "must hold a JSON object"},
      {"sam_image_missing", kSam + "--image {D}/none.png --box 1,1,20,20 --out {O}", 1, "does not exist"},
      {"sam_image_empty", kSam + "--image {D}/empty.png --box 1,1,20,20 --out {O}", 1, "is empty (0 bytes)"},
      {"sam_image_truncated", kSam + "--image {D}/trunc.png --box 1,1,20,20 --out {O}", 1, "is truncated"},
      {"sam_image_wrong_type", kSam + "--image {D}/text.png --box 1,1,20,20 --out {O}", 1, "corrupt or unsupported format"},
      {"sam_image_huge", kSam + "--image {D}/huge.png --box 1,1,20,20 --out {O}", 1, "beyond the limit"},
      {"sam_image_empty_folder", kSam + "--image {D}/emptydir --box 1,1,20,20 --out {O}", 1, "holds no image files"},
      {"sam_no_prompt", kSam + "--image {D}/img.png --out {O}", 1, "no prompt for image"},
      {"sam_point_nan", kSam + "--image {D}/img.png --point nan,3 --out {O}", 1, "'nan' is not a finite number"},
      {"sam_point_inf", kSam + "--image {D}/img.png --point 3,inf --out {O}", 1, "'inf' is not a finite number"},
      {"sam_point_text", kSam + "--image {D}/img.png --point a,b --out {O}", 1, "'a' is not a finite number"},
      {"sam_point_arity", kSam + "--image {D}/img.png --point 1,2,1,4 --out {O}", 1, "a point is X,Y or X,Y,LABEL"},
      {"sam_point_label", kSam + "--image {D}/img.png --point 3,4,5 --out {O}", 1, "label 5 must be 1"},
      {"sam_point_outside", kSam + "--image {D}/img.png --point 500,4 --out {O}", 1, "lies outside the image"},
      {"sam_box_nan", kSam + "--image {D}/img.png --box 1,1,nan,20 --out {O}", 1, "'nan' is not a finite number"},
      {"sam_box_inverted", kSam + "--image {D}/img.png --box 30,30,10,10 --out {O}", 1, "needs X1 > X0"},
      {"sam_box_outside", kSam + "--image {D}/img.png --box 100,100,200,200 --out {O}", 1, "lies outside the image"},
      {"sam_box_arity", kSam + "--image {D}/img.png --box 1,2,3 --out {O}", 1, "a box is X0,Y0,X1,Y1"},
      {"sam_box_huge", kSam + "--image {D}/img.png --box 1,1,1e39,20 --out {O}", 1, "must be finite numbers"},
      {"sam_mask_missing", kSam + "--image {D}/img.png --box 1,1,20,20 --mask-input {D}/none.npy --out {O}", 1, "does not exist"},
      {"sam_mask_empty", kSam + "--image {D}/img.png --box 1,1,20,20 --mask-input {D}/empty.npy --out {O}", 1, "is not a .npy file"},
      {"sam_mask_wrong_type", kSam + "--image {D}/img.png --box 1,1,20,20 --mask-input {D}/text.npy --out {O}", 1,
       "is not a .npy file"},
      {"sam_mask_truncated", kSam + "--image {D}/img.png --box 1,1,20,20 --mask-input {D}/trunc.npy --out {O}", 1,
       ".npy data truncated"},
      {"sam_mask_wrong_shape", kSam + "--image {D}/img.png --box 1,1,20,20 --mask-input {D}/wrongshape.npy --out {O}",
       1, "expected [1, 40, 40]"},
      {"sam_mask_huge", kSam + "--image {D}/img.png --box 1,1,20,20 --mask-input {D}/huge.npy --out {O}", 1, ".npy data truncated"},
      {"sam_mask_nan", kSam + "--image {D}/img.png --box 1,1,20,20 --mask-input {D}/nan.npy --out {O}", 1, "holds NaN or infinite values"},
      {"sam_prompts_missing", kSam + "--image {D}/img.png --prompts {D}/none.json --out {O}", 1, "--prompts: cannot open"},
      {"sam_prompts_empty", kSam + "--image {D}/img.png --prompts {D}/p_empty.json --out {O}", 1, "is not valid JSON (line 1"},
      {"sam_prompts_truncated", kSam + "--image {D}/img.png --prompts {D}/p_trunc.json --out {O}", 1, "is not valid JSON (line 1"},
      {"sam_prompts_array", kSam + "--image {D}/img.png --prompts {D}/p_array.json --out {O}", 1, "must map image file names to prompt objects"},
      {"sam_prompts_nan", kSam + "--image {D}/img.png --prompts {D}/p_nan.json --out {O}", 1, "is not valid JSON (line 1"},
      {"sam_prompts_unknown_field", kSam + "--image {D}/img.png --prompts {D}/p_field.json --out {O}", 1, "unknown field 'boxes'"},
      {"sam_prompts_inverted", kSam + "--image {D}/img.png --prompts {D}/p_inverted.json --out {O}", 1, "needs X1 > X0"},
      {"sam_prompts_outside", kSam + "--image {D}/img.png --prompts {D}/p_outside.json --out {O}", 1, "lies outside the image"},
      {"sam_prompts_huge", kSam + "--image {D}/img.png --prompts {D}/p_huge.json --out {O}", 1, "must be finite numbers"},
      {"sam_prompts_label", kSam + "--image {D}/img.png --prompts {D}/p_label.json --out {O}", 1, "label 7 must be"},
      {"sam_prompts_mask_missing", kSam + "--image {D}/img.png --prompts {D}/p_mask.json --out {O}", 1, "does not exist"},
      {"sam_prompts_wrong_type", kSam + "--image {D}/img.png --prompts {D}/p_type.json --out {O}", 1, "field 'points' must be a list"},
      {"sam_prompts_other_image", kSam + "--image {D}/img.png --prompts {D}/p_other.json --out {O}", 1, "no prompt for image"},
      {"sam_prompts_checkpoint", kSam + "--image {D}/img.png --prompts {D}/nomodel.pth --out {O}", 1, "is not valid JSON"},
      {"sam_shard_range", kSam + "--image {D}/images --box 1,1,20,20 --shard 5/2 --out {O}", 1, "needs 1 <= K <= N"},
      // ---- sam --auto: prompts excluded, one row per kind of bad generator option
      {"sam_auto_with_box", kSam + "--image {D}/img.png --auto --box 1,1,20,20 --out {O}", 2,
       "--auto prompts a grid of points itself: it excludes --point, --box"},
      {"sam_auto_with_point", kSam + "--image {D}/img.png --auto --point 3,4 --out {O}", 2, "--auto prompts a grid of points itself"},
      {"sam_auto_with_prompts", kSam + "--image {D}/img.png --auto --prompts {D}/p_other.json --out {O}", 2,
       "--auto prompts a grid of points itself"},
      {"sam_auto_points_zero", kSam + "--image {D}/img.png --auto --points-per-side 0 --out {O}", 1,
       "automask: points_per_side must lie in [1, 256], got 0"},
      {"sam_auto_points_text", kSam + "--image {D}/img.png --auto --points-per-side many --out {O}", 2, "Could not convert"},
      {"sam_auto_batch_negative", kSam + "--image {D}/img.png --auto --points-per-batch -3 --out {O}", 1,
       "automask: points_per_batch must lie in [1, 4096], got -3"},
      {"sam_auto_nms_range", kSam + "--image {D}/img.png --auto --box-nms-thresh 1.5 --out {O}", 1,
       "automask: box_nms_thresh must lie in [0, 1], got 1.5"},
      {"sam_auto_overlap_one", kSam + "--image {D}/img.png --auto --crop-overlap-ratio 1 --out {O}", 1,
       "automask: crop_overlap_ratio must lie in [0, 1)"},
      {"sam_auto_crop_layers", kSam + "--image {D}/img.png --auto --crop-n-layers 9 --out {O}", 1,
       "automask: crop_n_layers must lie in [0, 6], got 9"},
      {"sam_auto_min_area_negative", kSam + "--image {D}/img.png --auto --min-mask-region-area -1 --out {O}", 1,
       "automask: min_mask_region_area must be >= 0, got -1"},
      {"sam_auto_output_type", kSam + "--image {D}/img.png --auto --output-type Multi-mask --out {O}", 2, "--output-type"},
      {"sam_auto_image_missing", kSam + "--image {D}/none.png --auto --out {O}", 1, "does not exist"},
      // ---- medsam: --checkpoint, --model-config, --image, --box
      {"medsam_checkpoint_missing", "medsam --checkpoint {D}/none.pth --image {D}/img.png --box 1,1,20,20 --out {O}",
       1, "SAM checkpoint not found"},
      {"medsam_checkpoint_truncated",
       "medsam --checkpoint {D}/trunc.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1, "corrupt or truncated zip archive"},
      {"medsam_checkpoint_text", "medsam --checkpoint {D}/text.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1,
       "is not a PyTorch checkpoint"},
      {"medsam_checkpoint_no_model",
       "medsam --checkpoint {D}/nomodel.pth --image {D}/img.png --box 1,1,20,20 --out {O}", 1, "no state dict found"},
      {"medsam_checkpoint_wrong_model",
       "medsam --checkpoint {G}/glomsam/unet.pth --model-config {G}/models/sam_tiny.json --image {D}/img.png "
       "--box 1,1,20,20 --out {O}",
       1, "does not fit the model"},
      {"medsam_config_truncated",
       "medsam --checkpoint {G}/models/sam_tiny.pth --model-config {D}/c_trunc.json --image {D}/img.png "
       "--box 1,1,20,20 --out {O}",
       1, "is not valid JSON"},
      {"medsam_image_missing", kMedsam + "--image {D}/none.png --box 1,1,20,20 --out {O}", 1, "does not exist"},
      {"medsam_image_truncated", kMedsam + "--image {D}/trunc.png --box 1,1,20,20 --out {O}", 1, "is truncated"},
      {"medsam_image_wrong_type", kMedsam + "--image {D}/text.png --box 1,1,20,20 --out {O}", 1, "corrupt or unsupported format"},
      {"medsam_image_huge", kMedsam + "--image {D}/huge.ppm --box 1,1,20,20 --out {O}", 1, "beyond the limit"},
      {"medsam_box_inf", kMedsam + "--image {D}/img.png --box 1,1,inf,20 --out {O}", 1, "'inf' is not a finite number"},
      {"medsam_box_inverted", kMedsam + "--image {D}/img.png --box 30,30,10,10 --out {O}", 1, "X1 > X0"},
      {"medsam_box_outside", kMedsam + "--image {D}/img.png --box 100,100,200,200 --out {O}", 1, "lies outside the image"},
      {"medsam_box_text", kMedsam + "--image {D}/img.png --box a,b,c,d --out {O}", 1, "'a' is not a finite number"},
      // ---- features: --checkpoint, --model-type, --model-config, --image, --size
      {"features_checkpoint_missing", "features --model-type vits14 --checkpoint {D}/none.pth --image {D}/img.png --out {O}/f.npy", 1,
       "does not exist"},
      {"features_checkpoint_empty", "features --model-type vits14 --checkpoint {D}/empty.pth --image {D}/img.png --size 56 --out {O}/f.npy", 1, "is empty or truncated (0 bytes)"},
      {"features_checkpoint_legacy", "features --model-type vits14 --checkpoint {D}/legacy.pth --image {D}/img.png --size 56 --out {O}/f.npy", 1,
       "uses the legacy (pre-1.6, non-zip) torch.save format"},
      {"features_checkpoint_no_model", "features --model-type vits14 --checkpoint {D}/nomodel.pth --image {D}/img.png --size 56 --out {O}/f.npy", 1,
       "no state dict found"},
      {"features_checkpoint_wrong_model",
       "features --checkpoint {G}/models/sam_tiny.pth --model-config {G}/models/dinov2_tiny.json --image "
       "{D}/img.png --size 56 --out {O}/f.npy",
       1, "holds no DINOv2 cls_token"},
      {"features_out_pipe", kFeat + "--image {D}/img.png --out {D}/pipe.npy", 1,
       "output '{D}/pipe.npy' exists and is a named pipe"},
      {"features_out_folder", kFeat + "--image {D}/img.png --out {D}/outdir.npy", 1,
       "output '{D}/outdir.npy' exists and is a folder"},
      {"features_type_unknown",
       "features --checkpoint {G}/models/dinov2_tiny.pth --model-type vits99 --image {D}/img.png --out {O}/f.npy", 1,
       "unknown DINOv2 model type"},
      {"features_config_wrong_type",
       "features --checkpoint {G}/models/dinov2_tiny.pth --model-config {D}/c_type.json --image {D}/img.png --out "
       "{O}/f.npy",
       1, "unknown field config.encoder_depth"},
      {"features_image_missing", kFeat + "--image {D}/none.png --out {O}/f.npy", 1, "does not exist"},
      {"features_image_truncated", kFeat + "--image {D}/trunc.png --out {O}/f.npy", 1, "is truncated"},
      {"features_image_huge", kFeat + "--image {D}/huge.png --out {O}/f.npy", 1, "beyond the limit"},
      {"features_size_zero", "features --checkpoint {G}/models/dinov2_tiny.pth --model-config {G}/models/dinov2_tiny.json "
       "--image {D}/img.png --size 0 --out {O}/f.npy", 1, "without --size both sides must be multiples of 14"},
      {"features_size_negative", "features --checkpoint {G}/models/dinov2_tiny.pth --model-config {G}/models/dinov2_tiny.json "
       "--image {D}/img.png --size -14 --out {O}/f.npy", 1, "--size must be >= 0"},
      {"features_size_huge", "features --checkpoint {G}/models/dinov2_tiny.pth --model-config {G}/models/dinov2_tiny.json "
       "--image {D}/img.png --size 999992 --out {O}/f.npy", 1, "out of memory: cannot allocate"},
      // ---- glomsam predict: --checkpoint, --image, --box, --gt, --overlap, --threshold, --patch-size
      {"gsp_checkpoint_missing", "glomsam predict --checkpoint {D}/none.pth --config tiny --image {D}/img.png --auto "
                                 "--out {O}",
       1, "does not exist"},
      {"gsp_checkpoint_truncated",
       "glomsam predict --checkpoint {D}/trunc.pth --config tiny --image {D}/img.png --auto --out {O}", 1, "corrupt or truncated zip archive"},
      {"gsp_checkpoint_no_model",
       "glomsam predict --checkpoint {D}/nomodel.pth --config tiny --image {D}/img.png --auto --out {O}", 1, "no state dict found"},
      {"gsp_checkpoint_wrong_model",
       "glomsam predict --checkpoint {G}/models/sam_tiny.pth --config tiny --image {D}/img.png --auto --out {O}", 1,
       "does not fit the model"},
      {"gsp_config_unknown",
       "glomsam predict --checkpoint {G}/glomsam/full_model.pth --config huge9 --image {D}/img.png --auto --out {O}",
       1, "cannot open 'huge9'"},
      {"gsp_image_missing", kGsp + "--image {D}/none.png --auto --out {O}", 1, "does not exist"},
      {"gsp_image_empty", kGsp + "--image {D}/empty.png --auto --out {O}", 1, "is empty (0 bytes)"},
      {"gsp_image_wrong_type", kGsp + "--image {D}/text.png --auto --out {O}", 1, "corrupt or unsupported format"},
      {"gsp_image_huge", kGsp + "--image {D}/huge.png --auto --out {O}", 1, "beyond the limit"},
      {"gsp_box_nan", kGsp + "--image {D}/img.png --box nan,1,20,20 --out {O}", 1, "'nan' is not a finite number"},
      {"gsp_box_outside", kGsp + "--image {D}/img.png --box 300,300,400,400 --out {O}", 1, "lies entirely outside"},
      {"gsp_gt_missing", kGsp + "--image {D}/img.png --gt {D}/none.png --box-from-gt --out {O}", 1, "does not exist"},
      {"gsp_gt_truncated", kGsp + "--image {D}/img.png --gt {D}/trunc.png --box-from-gt --out {O}", 1, "is truncated"},
      {"gsp_gt_empty_mask", kGsp + "--image {D}/img.png --gt {D}/zero.png --box-from-gt --out {O}", 1, "has no foreground pixel"},
      {"gsp_gt_size", kGsp + "--image {D}/img.png --gt {D}/small.png --box-from-gt --out {O}", 1, "is 32x32, the image 64x48"},
      {"gsp_overlap_nan", kGsp + "--image {D}/img.png --auto --overlap nan --out {O}", 2, "Could not convert"},
      {"gsp_overlap_range", kGsp + "--image {D}/img.png --auto --overlap 1.5 --out {O}", 2, "Could not convert"},
      {"gsp_overlap_negative", kGsp + "--image {D}/img.png --auto --overlap -8 --out {O}", 1, "--overlap must be >= 0"},
      {"gsp_patch_negative", kGsp + "--image {D}/img.png --auto --patch-size -5 --out {O}", 1, "--patch-size must be >= 0"},
      {"gsp_threshold_nan", kGsp + "--image {D}/img.png --auto --threshold nan --out {O}", 1, "--threshold must be a finite logit"},
      // ---- glomsam train: --images, --masks, --val-*, --split, numbers, checkpoints
      {"train_images_missing", kTrain + "--images {D}/none --masks {D}/masks", 1, "image folder"},
      {"train_images_empty", kTrain + "--images {D}/emptydir --masks {D}/masks", 1, "problem(s) in the training data"},
      {"train_masks_missing", kTrain + "--images {D}/images --masks {D}/none", 1, "mask folder"},
      {"train_masks_names", kTrain + "--images {D}/images --masks {D}/masks_other", 1, "problem(s) in the training data"},
      {"train_masks_size", kTrain + "--images {D}/images --masks {D}/masks_small", 1, "problem(s) in the training data"},
      {"train_masks_truncated", kTrain + "--images {D}/images --masks {D}/masks_trunc", 1, "problem(s) in the training data"},
      {"train_val_missing", kTrain + "--images {D}/images --masks {D}/masks --val-images {D}/none --val-masks {D}/none",
       1, "image folder"},
      {"train_epochs_zero", "glomsam train --config tiny --epochs 0 --images {D}/images --masks {D}/masks --out {O}",
       1, "epochs and batch size must be positive"},
      {"train_batch_zero",
       "glomsam train --config tiny --batch-size 0 --images {D}/images --masks {D}/masks --out {O}", 1, "epochs and batch size must be positive"},
      {"train_lr_nan", kTrain + "--images {D}/images --masks {D}/masks --lr nan", 1, "--lr must be a positive, finite number"},
      {"train_lr_negative", kTrain + "--images {D}/images --masks {D}/masks --lr -1", 1, "--lr must be a positive, finite number"},
      {"train_wd_inf", kTrain + "--images {D}/images --masks {D}/masks --weight-decay inf", 1, "--weight-decay must be a finite number >= 0"},
      {"train_split_range", "glomsam train --config tiny --images {D}/images --masks {D}/masks --split 1.5 --out {O}", 1, "split '1.5'"},
      {"train_jitter_nan", kTrain + "--images {D}/images --masks {D}/masks --box-jitter nan", 2, "Could not convert"},
      {"train_sam_missing", kTrain + "--images {D}/images --masks {D}/masks --sam {D}/none.pth", 1, "does not exist"},
      {"train_sam_truncated", kTrain + "--images {D}/images --masks {D}/masks --sam {D}/trunc.pth", 1, "corrupt or truncated zip archive"},
      {"train_init_no_model", kTrain + "--images {D}/images --masks {D}/masks --init {D}/nomodel.pth", 1, "no state dict found"},
      {"train_resnet_text", kTrain + "--images {D}/images --masks {D}/masks --resnet {D}/text.pth", 1, "is not a PyTorch checkpoint"},
      {"train_config_unknown",
       "glomsam train --config nosuch --epochs 1 --images {D}/images --masks {D}/masks --out {O}", 1, "cannot open 'nosuch'"},
      {"train_resume_nothing", kTrain + "--images {D}/images --masks {D}/masks --resume", 1, "--resume: no checkpoint"},
      // ---- glomsam train-unet
      {"unet_images_missing", kUnet + "--images {D}/none --masks {D}/masks", 1, "image folder"},
      {"unet_masks_names", kUnet + "--images {D}/images --masks {D}/masks_other", 1, "problem(s) in the training data"},
      {"unet_masks_truncated", kUnet + "--images {D}/images --masks {D}/masks_trunc", 1, "problem(s) in the training data"},
      {"unet_epochs_negative", "glomsam train-unet --epochs -1 --images {D}/images --masks {D}/masks --out {O}", 1,
       "epochs and batch size must be positive"},
      {"unet_lr_nan", kUnet + "--images {D}/images --masks {D}/masks --lr nan", 1, "--lr must be a positive, finite number"},
      {"unet_input_zero", kUnet + "--images {D}/images --masks {D}/masks --input-size 0", 1, "--input-size must be positive"},
      {"unet_features_zero", kUnet + "--images {D}/images --masks {D}/masks --features 0", 1, "--features widths must be positive"},
      // ---- slide: --slide, --segmenter, --checkpoint, numbers
      {"slide_missing", kSlide + "--slide {D}/none.tif", 1, "no such file"},
      {"slide_empty", kSlide + "--slide {D}/empty.png", 1, "is empty (0 bytes)"},
      {"slide_truncated_png", kSlide + "--slide {D}/trunc.png", 1, "is truncated"},
      {"slide_truncated_tif", kSlide + "--slide {D}/trunc.tif", 1, "truncated"},
      {"slide_wrong_type", kSlide + "--slide {D}/text.png", 1, "corrupt or unsupported format"},
      {"slide_huge_png", kSlide + "--slide {D}/huge.png", 1, "beyond the limit"},
      {"slide_huge_tif", kSlide + "--slide {D}/huge.tif", 1, "beyond the limit of 1048576 pixels per side"},
      {"slide_empty_folder", kSlide + "--slide {D}/emptydir", 1, "no slide files"},
      {"slide_segmenter_unknown", kSlide + "--slide {D}/img.png --segmenter magic", 1, "unknown segmenter 'magic'"},
      {"slide_checkpoint_missing", kSlide + "--slide {D}/img.png --segmenter glomsam --checkpoint {D}/none.pth", 1,
       "does not exist"},
      {"slide_checkpoint_no_model",
       kSlide + "--slide {D}/img.png --segmenter glomsam --checkpoint {D}/nomodel.pth --model-config tiny", 1, "no state dict found"},
      {"slide_mpp_nan", "slide --out {O} --slide {D}/img.png --mpp nan", 1, "--mpp and --magnification must be positive"},
      {"slide_mpp_negative", "slide --out {O} --slide {D}/img.png --mpp -1", 1, "--mpp and --magnification must be positive"},
      {"slide_magnification_inf", "slide --out {O} --slide {D}/img.png --magnification inf", 1, "--mpp and --magnification must be positive"},
      {"slide_level_range", "slide --out {O} --slide {D}/img.png --level 9", 1, "--level 9 out of range"},
      {"slide_tile_zero", kSlide + "--slide {D}/img.png --tile 0", 1, "must exceed twice --halo"},
      {"slide_halo_negative", kSlide + "--slide {D}/img.png --halo -3", 1, "must exceed twice --halo"},
      {"slide_tissue_unknown", kSlide + "--slide {D}/img.png --tissue maybe", 1, "unknown tissue mode 'maybe'"},
      {"slide_roi_arity", kSlide + "--slide {D}/img.png --roi 1,2,3", 1, "expected X,Y,W,H"},
      {"slide_roi_outside", kSlide + "--slide {D}/img.png --roi 1000,1000,10,10", 1, "lies outside the slide"},
      {"slide_roi_negative", kSlide + "--slide {D}/img.png --roi 0,0,-5,10", 1, "lies outside the slide"},
      {"slide_channels_range", kSlide + "--slide {D}/img.png --channels 7", 1, "channel 7 requested but the slide has 3"},
      {"slide_object_type", kSlide + "--slide {D}/img.png --object-type blob", 1, "unknown object type 'blob'"},
      {"slide_min_area_nan", kSlide + "--slide {D}/img.png --min-area nan", 1, "need 0 <= min < max"},
      {"slide_area_inverted", kSlide + "--slide {D}/img.png --min-area 100 --max-area 10", 1, "need 0 <= min < max"},
      // ---- merge: OUT
      {"merge_missing", "merge {D}/none", 1, "is not a folder"},
      {"merge_not_sharded", "merge {D}/emptydir", 1, "no run.shard-K-of-N.json"},
      {"merge_file", "merge {D}/img.png", 1, "is not a folder"},
      // ---- gbmseg (classical features and segmenter: no model needed)
      {"gbmseg_reference_missing",
       "gbmseg --features classical --segmenter classical --reference-image {D}/none.png --reference-mask "
       "{D}/mask.png --target {D}/img.png --out {O}",
       1, "does not exist"},
      {"gbmseg_reference_truncated",
       "gbmseg --features classical --segmenter classical --reference-image {D}/trunc.png --reference-mask "
       "{D}/mask.png --target {D}/img.png --out {O}",
       1, "is truncated"},
      {"gbmseg_target_missing",
       "gbmseg --features classical --segmenter classical --reference-image {D}/img.png --reference-mask "
       "{D}/mask.png --target {D}/none.png --out {O}",
       1, "does not exist"},
      {"gbmseg_target_huge",
       "gbmseg --features classical --segmenter classical --reference-image {D}/img.png --reference-mask "
       "{D}/mask.png --target {D}/huge.png --out {O}",
       1, "beyond the limit", {"run.json", "summary.csv"}},
      {"gbmseg_dinov2_no_model",
       "gbmseg --segmenter classical --dinov2-checkpoint {D}/nomodel.pth --reference-image {D}/img.png "
       "--reference-mask {D}/mask.png --target {D}/img.png --out {O}",
       1, "no state dict found"},
      {"gbmseg_size_zero",
       "gbmseg --features classical --segmenter classical --reference-image {D}/img.png --reference-mask "
       "{D}/mask.png --target {D}/img.png --size 0 --out {O}",
       1, "must be a positive multiple of the patch size"},
      // ---- demo and benchmarks: out-of-range numbers
      {"demo_nm_nan", "demo --out {O} --nm-per-pixel nan", 1, "nm_per_pixel must be > 0"},
      {"demo_targets_zero", "demo --out {O} --targets 0", 1, "number of targets must be in [1, 100]"},
      {"bench_sam_runs_zero", "bench sam --runs 0", 1, "--runs and --decoder-runs must be >= 1"},
      {"bench_slide_sides", "bench slide --work {O} --sides 0", 1, "bench slide:"},
      {"bench_serve_runs_zero", "bench serve --runs 0", 1, "bench serve: --runs must be >= 1"},
  };
  return t;
}

// ---- Running one case ----------------------------------------------------------------

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); ++it)
    if (!it->is_directory()) out.push_back(fs::relative(it->path(), dir).string());
  return out;
}

class BadInput : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    g_dir = temp_dir("bad_input");
    make_fixtures(g_dir);
  }
};

TEST_P(BadInput, FailsCleanly) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const Case& c = GetParam();
  std::string args = c.args;
  if (args.find("{G}") != std::string::npos) {
    NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
    NEPHRO_REQUIRE_SHARED("golden/glomsam/full_model.pth");
    args = replace_all(args, "{G}", shared_path("golden"));
  }
  const std::string out = g_dir + "/out/" + c.name;
  args = replace_all(replace_all(args, "{D}", g_dir), "{O}", out);
  const std::string log_dir = g_dir + "/logs/" + c.name;
  fs::create_directories(log_dir);
  // `timeout` bounds a hang; --quiet keeps progress lines off stderr.
  const std::string cmd = "timeout -k 5 60 " + binary_dir() + "/nephroseg --threads 1 --quiet " + args + " > " +
                          log_dir + "/stdout.txt 2> " + log_dir + "/stderr.txt";
  const auto t0 = std::chrono::steady_clock::now();
  const int status = std::system(cmd.c_str());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const std::string err = read(log_dir + "/stderr.txt");
  // The first line that is not a warning (batch commands warn about each failed item
  // before the error that ends the run).
  std::string first;
  std::istringstream lines(err);
  while (std::getline(lines, first) && first.rfind("warning: ", 0) == 0) {
  }
  SCOPED_TRACE("nephroseg " + args + "\nstderr: " + err);
  EXPECT_EQ(code, c.code);
  EXPECT_EQ(first.rfind("error: ", 0), 0u) << first;
  const std::string expect = replace_all(c.expect, "{D}", g_dir);
  EXPECT_NE(first.find(expect), std::string::npos) << "expected '" << expect << "' in: " << first;
  EXPECT_LT(seconds, kMaxSeconds);
  std::vector<std::string> left = files_under(out), records = c.records;
  std::sort(left.begin(), left.end());
  std::sort(records.begin(), records.end());
  EXPECT_EQ(left, records) << "files left in the output folder";
}

INSTANTIATE_TEST_SUITE_P(AllCommands, BadInput, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(BadInputTable, HasAtLeast150Cases) { EXPECT_GE(cases().size(), 150u); }

}  // namespace

// The micrograph workbench's JSON API (`nephroseg serve --root DIR`, /api/...,
// /work/notes/wb-api.md, docs/workbench.md) on a real socket (127.0.0.1, port 0) with
// httplib's client: the path rules, files and tiles checked against the pictures drawn
// here, annotation sessions against SamModel called directly, GBMSeg jobs on phantoms
// with the tiny golden DINOv2 + SAM, the review's re-measure against
// workloads::run_measure_batch, and the export's zip parsed here byte by byte.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <set>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/measure/phantom.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/measure/report.h"
#include "nephroseg/sam/sam.h"
#include "nephroseg/serve/server.h"
#include "nephroseg/workloads/measure.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using nlohmann::json;
using nephroseg::serve::Server;
using nephroseg::serve::ServeOptions;

namespace {

const char* kSam = "golden/models/sam_tiny.pth";
const char* kSamConfig = "golden/models/sam_tiny.json";
const char* kDino = "golden/models/dinov2_tiny.pth";
const char* kDinoConfig = "golden/models/dinov2_tiny.json";

/// A 600 x 300 RGB picture with no repeating structure: gradients, a disk, a square.
cv::Mat wide_image() {
  cv::Mat rgb(300, 600, CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y)
    for (int x = 0; x < rgb.cols; ++x)
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(uchar(x * 255 / 599), uchar(y * 255 / 299), uchar((x + 2 * y) * 255 / 1200));
  cv::circle(rgb, {380, 140}, 70, cv::Scalar(250, 240, 230), cv::FILLED);
  cv::rectangle(rgb, cv::Rect(40, 200, 90, 60), cv::Scalar(10, 20, 30), cv::FILLED);
  return rgb;
}

/// A 160 x 120 RGB picture for SAM: a bright disk and a dark square on a gradient.
cv::Mat sam_image() {
  cv::Mat rgb(120, 160, CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y)
    for (int x = 0; x < rgb.cols; ++x) rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(uchar(x), uchar(y * 2), 90);
  cv::circle(rgb, {60, 55}, 28, cv::Scalar(250, 240, 230), cv::FILLED);
  cv::rectangle(rgb, cv::Rect(110, 70, 30, 30), cv::Scalar(10, 20, 30), cv::FILLED);
  return rgb;
}

void write_rgb_png(const fs::path& p, const cv::Mat& rgb) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imwrite(p.string(), bgr));
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Decodes an answer's PNG / JPEG as it is (BGR, BGRA or grey).
cv::Mat decode(const std::string& bytes) {
  std::vector<uchar> buf(bytes.begin(), bytes.end());
  return cv::imdecode(buf, cv::IMREAD_UNCHANGED);
}

std::string detail_of(const httplib::Result& r) {
  if (!r) return "<no response>";
  const json j = json::parse(r->body, nullptr, false);
  return j.is_object() && j.contains("detail") && j["detail"].is_string() ? j["detail"].get<std::string>()
                                                                          : "<no detail: " + r->body.substr(0, 200) + ">";
}

/// Percent-encodes a query value.
std::string q(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// CRC-32 (IEEE 802.3, reflected, 0xEDB88320) bit by bit: the zip's checksums are
/// checked without zlib.
uint32_t crc32_bitwise(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t le16(const std::string& s, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(s.at(at))) |
         static_cast<uint32_t>(static_cast<unsigned char>(s.at(at + 1))) << 8;
}
uint32_t le32(const std::string& s, size_t at) { return le16(s, at) | le16(s, at + 2) << 16; }

/// The members of a stored zip, read through its end record and central directory
/// (then each local header), checking signatures, sizes, method 0 and CRC-32.
std::map<std::string, std::string> unzip_stored(const std::string& zip) {
  std::map<std::string, std::string> out;
  EXPECT_GE(zip.size(), 22u);
  if (zip.size() < 22) return out;
  const size_t eocd = zip.size() - 22;  // no archive comment
  EXPECT_EQ(le32(zip, eocd), 0x06054b50u) << "no end of central directory record";
  const uint32_t count = le16(zip, eocd + 10), dir_size = le32(zip, eocd + 12), dir_at = le32(zip, eocd + 16);
  EXPECT_EQ(le16(zip, eocd + 8), count);
  EXPECT_EQ(dir_at + dir_size, eocd);
  size_t at = dir_at;
  for (uint32_t i = 0; i < count; ++i) {
    EXPECT_EQ(le32(zip, at), 0x02014b50u) << "central entry " << i;
    const uint32_t method = le16(zip, at + 10), crc = le32(zip, at + 16), csize = le32(zip, at + 20),
                   usize = le32(zip, at + 24), nlen = le16(zip, at + 28), xlen = le16(zip, at + 30),
                   clen = le16(zip, at + 32), local = le32(zip, at + 42);
    const std::string name = zip.substr(at + 46, nlen);
    EXPECT_EQ(method, 0u) << name;
    EXPECT_EQ(csize, usize) << name;
    EXPECT_EQ(le32(zip, local), 0x04034b50u) << name;
    EXPECT_EQ(le32(zip, local + 14), crc) << name;
    const uint32_t lnlen = le16(zip, local + 26), lxlen = le16(zip, local + 28);
    EXPECT_EQ(zip.substr(local + 30, lnlen), name);
    const std::string data = zip.substr(local + 30 + lnlen + lxlen, usize);
    EXPECT_EQ(crc32_bitwise(data), crc) << name;
    out[name] = data;
    at += 46 + nlen + xlen + clen;
  }
  EXPECT_EQ(at, eocd);
  return out;
}

/// In a WorkbenchTest: skips the test when the tiny golden models are absent (the path,
/// file, tile and token tests run without them).
#define NEPHRO_REQUIRE_MODELS()                                                                     \
  if (!have_models())                                                                               \
  GTEST_SKIP() << "needs ../shared/" << missing_ << " (golden vectors; absent in a fresh clone; set" \
               << " NEPHROSEG_SHARED to point at it)"

class WorkbenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {kSam, kSamConfig, kDino, kDinoConfig})
      if (nephroseg::test::shared_path(f).empty()) missing_ = f;
    base_ = nephroseg::test::temp_dir("workbench");
    data_ = fs::path(base_) / "data";
    fs::create_directories(data_ / "ph" / "images");
    fs::create_directories(data_ / "ph" / "masks");
    fs::create_directories(fs::path(base_) / "outside");
    const json weights = json::array(
        {{{"name", "tiny"},
          {"kind", "sam"},
          {"checkpoint", nephroseg::test::shared_path(kSam)},
          {"model_config", nephroseg::test::shared_path(kSamConfig)},
          {"precision", "fp32"}},
         {{"name", "tinydino"},
          {"kind", "dinov2"},
          {"checkpoint", nephroseg::test::shared_path(kDino)},
          {"model_config", nephroseg::test::shared_path(kDinoConfig)},
          {"precision", "fp32"}}});
    std::ofstream(fs::path(base_) / "weights.json") << weights.dump(1);
    if (missing_.empty()) options_.weights_file = (fs::path(base_) / "weights.json").string();
    options_.roots = {data_.string()};
    options_.port = 0;
    options_.log_requests = false;
  }
  /// True when the tiny golden models are there; otherwise the caller skips.
  bool have_models() const { return missing_.empty(); }
  void TearDown() override {
    if (server_) server_->stop();
  }

  void start(const ServeOptions& o) {
    server_ = std::make_unique<Server>(o);
    const int port = server_->start();
    ASSERT_GT(port, 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port);
    client_->set_read_timeout(120, 0);
  }
  void start() { start(options_); }

  httplib::Result get(const std::string& path) { return client_->Get(path.c_str()); }
  httplib::Result post(const std::string& path, const json& body) {
    return client_->Post(path.c_str(), body.dump(), "application/json");
  }
  /// A JSON answer with status 200 (the test fails otherwise).
  json get_ok(const std::string& path) {
    auto r = get(path);
    EXPECT_TRUE(r) << path;
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << path << ": " << r->body.substr(0, 400);
    return json::parse(r->body, nullptr, false);
  }
  json post_ok(const std::string& path, const json& body) {
    auto r = post(path, body);
    EXPECT_TRUE(r) << path;
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << path << " " << body.dump().substr(0, 200) << ": " << r->body.substr(0, 400);
    return json::parse(r->body, nullptr, false);
  }
  /// The answer has `status` and a JSON detail containing `needle`.
  void expect_error(const httplib::Result& r, int status, const std::string& needle, const std::string& what) {
    ASSERT_TRUE(r) << what;
    EXPECT_EQ(r->status, status) << what << ": " << r->body.substr(0, 300);
    EXPECT_NE(r->get_header_value("Content-Type").find("application/json"), std::string::npos) << what;
    EXPECT_NE(detail_of(r).find(needle), std::string::npos) << what << ": detail \"" << detail_of(r) << "\"";
  }

  /// Phantoms phantom_<i>.png (images/, 8-bit grey) and their masks (masks/).
  void write_phantoms(int n, int size = 256) {
    for (int i = 0; i < n; ++i) {
      nephroseg::measure::PhantomOptions po;
      po.seed = 100 + i;
      po.size = size;
      po.thickness_px = 16;
      po.num_membranes = 2;
      const auto ph = nephroseg::measure::generate_phantom(po);
      const std::string name = "phantom_" + std::to_string(i) + ".png";
      ASSERT_TRUE(cv::imwrite((data_ / "ph" / "images" / name).string(), ph.image));
      ASSERT_TRUE(cv::imwrite((data_ / "ph" / "masks" / name).string(), ph.mask));
    }
  }
  json wait_job(const std::string& id, double seconds = 240) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    json st;
    do {
      st = get_ok("/api/jobs/" + id);
      if (st.is_object() && st["state"] != "running" && st["state"] != "cancelling") return st;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } while (std::chrono::steady_clock::now() < until);
    ADD_FAILURE() << "job " << id << " still running after " << seconds << " s: " << st.dump();
    return st;
  }

  std::string missing_;  // a golden model file that is absent ("" when all are there)
  std::string base_;
  fs::path data_;
  ServeOptions options_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

// ---- paths -------------------------------------------------------------------------

TEST_F(WorkbenchTest, PathsOutsideTheRootsAre403) {
  write_rgb_png(data_ / "wide.png", wide_image());
  write_rgb_png(fs::path(base_) / "outside" / "secret.png", wide_image());
  std::ofstream(fs::path(base_) / "outside" / "secret.csv") << "a,b\n1,2\n";
  fs::create_directory_symlink(fs::path(base_) / "outside", data_ / "out_link");
  fs::create_symlink(fs::path(base_) / "outside" / "secret.png", data_ / "secret_link.png");
  fs::create_symlink(data_ / "wide.png", data_ / "inside_link.png");  // a link inside: fine
  start();

  const json roots = get_ok("/api/roots");
  ASSERT_EQ(roots["roots"].size(), 1u);
  EXPECT_EQ(roots["roots"][0]["name"], "data");
  EXPECT_EQ(roots["roots"][0]["path"], "data");
  EXPECT_TRUE(roots["version"].is_string());

  const std::string abs = (fs::path(base_) / "outside" / "secret.png").string();
  for (const std::string route : {"/api/info", "/api/thumb", "/api/file", "/api/list"}) {
    expect_error(get(route + "?path=" + q("data/../outside/secret.png")), 403, "..", route + " ..");
    expect_error(get(route + "?path=" + q("data/ph/../../outside")), 403, "..", route + " nested ..");
    expect_error(get(route + "?path=" + q(abs)), 403, "absolute", route + " absolute");
    expect_error(get(route + "?path=" + q("outside/secret.png")), 403, "not a served folder", route + " unknown root");
    expect_error(get(route + "?path=" + q("data/out_link/secret.png")), 403, "outside", route + " folder link out");
    expect_error(get(route + "?path=" + q("data/secret_link.png")), 403, "outside", route + " file link out");
  }
  expect_error(get("/api/list?path=" + q("data/out_link")), 403, "outside", "list of a link out");
  expect_error(get("/api/tile?z=0&x=0&y=0&path=" + q("data/secret_link.png")), 403, "outside", "tile link out");
  expect_error(get("/api/file?path=" + q("data/out_link/secret.csv")), 403, "outside", "csv link out");
  expect_error(get("/api/info?path=" + q("data/nope.png")), 404, "no such file", "missing file");
  // A link that stays inside the root is followed.
  EXPECT_EQ(get_ok("/api/info?path=" + q("data/inside_link.png"))["width"], 600);
  // Writes: a mask saved outside, a run folder outside.
  const json s = post_ok("/api/annotate/start", {{"path", "data/wide.png"}, {"model", "classical"}});
  expect_error(post("/api/annotate/save", {{"session", s["session"]}, {"out", "data/out_link/m.png"}}), 403, "outside",
               "save through a link out");
  expect_error(post("/api/annotate/save", {{"session", s["session"]}, {"out", "data/../m.png"}}), 403, "..", "save ..");
  expect_error(post("/api/annotate/save", {{"session", s["session"]}, {"out", abs + ".m.png"}}), 403, "absolute",
               "save absolute");
  expect_error(post("/api/gbmseg/run", {{"references", {{{"image", "data/wide.png"}, {"mask", "data/wide.png"}}}},
                                        {"targets", {"data/wide.png"}},
                                        {"out", "data/out_link/run"}}),
               403, "outside", "run folder through a link out");
  EXPECT_FALSE(fs::exists(fs::path(base_) / "outside" / "m.png"));
  EXPECT_FALSE(fs::exists(fs::path(base_) / "outside" / "run"));
  // The server kept serving.
  EXPECT_EQ(get_ok("/api/roots")["roots"].size(), 1u);
}

TEST_F(WorkbenchTest, WithoutRootsThePageLoadsAndFilesAre403) {
  options_.roots.clear();
  start();
  auto page = get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_EQ(get_ok("/api/roots")["roots"].size(), 0u);
  expect_error(get("/api/list?path=data"), 403, "--root", "list without roots");
  expect_error(get("/api/info?path=data/x.png"), 403, "--root", "info without roots");
}

TEST(WorkbenchOptions, ARootMustBeAFolder) {
  ServeOptions o;
  o.port = 0;
  o.log_requests = false;
  const std::string dir = nephroseg::test::temp_dir("workbench_opts");
  std::ofstream(dir + "/file.txt") << "x";
  o.roots = {dir + "/file.txt"};
  EXPECT_NE(nephroseg::test::error_of([&] { Server s(o); }).find("not a folder"), std::string::npos);
  o.roots = {dir + "/missing"};
  EXPECT_NE(nephroseg::test::error_of([&] { Server s(o); }).find("missing"), std::string::npos);
  // A repeated base name gets -2.
  fs::create_directories(dir + "/a/data");
  fs::create_directories(dir + "/b/data");
  o.roots = {dir + "/a/data", dir + "/b/data"};
  Server s(o);
  const int port = s.start();
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/api/roots");
  ASSERT_TRUE(r);
  const json roots = json::parse(r->body);
  ASSERT_EQ(roots["roots"].size(), 2u);
  EXPECT_EQ(roots["roots"][0]["name"], "data");
  EXPECT_EQ(roots["roots"][1]["name"], "data-2");
  s.stop();
}

// ---- static, files, tiles ----------------------------------------------------------

TEST_F(WorkbenchTest, PageAndAssetsAreServed) {
  start();
  auto page = get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("<html"), std::string::npos);
  for (const auto& [path, type] : std::vector<std::pair<std::string, std::string>>{
           {"/app/app.js", "javascript"}, {"/app/app.css", "text/css"}, {"/app/leaflet/leaflet.js", "javascript"}}) {
    auto r = get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_NE(r->get_header_value("Content-Type").find(type), std::string::npos) << path;
    EXPECT_GT(r->body.size(), 100u) << path;
  }
  expect_error(get("/app/no-such.js"), 404, "no such page", "unknown asset");
  expect_error(post("/", json::object()), 405, "not allowed", "POST /");
}

TEST_F(WorkbenchTest, ListInfoThumbAndModels) {
  write_rgb_png(data_ / "wide.png", wide_image());
  std::ofstream(data_ / "notes.csv") << "a\n1\n";
  std::ofstream(data_ / ".hidden") << "x";
  write_phantoms(1);
  start();
  const json list = get_ok("/api/list?path=data");
  EXPECT_EQ(list["path"], "data");
  EXPECT_TRUE(list["parent"].is_null());
  ASSERT_EQ(list["folders"].size(), 1u);
  EXPECT_EQ(list["folders"][0]["name"], "ph");
  EXPECT_EQ(list["folders"][0]["path"], "data/ph");
  EXPECT_EQ(list["folders"][0]["is_run"], false);
  ASSERT_EQ(list["images"].size(), 1u);
  EXPECT_EQ(list["images"][0]["path"], "data/wide.png");
  EXPECT_EQ(list["images"][0]["bytes"], fs::file_size(data_ / "wide.png"));
  ASSERT_EQ(list["files"].size(), 1u);
  EXPECT_EQ(list["files"][0]["name"], "notes.csv");
  EXPECT_EQ(get_ok("/api/list?path=data/")["folders"][0]["path"], "data/ph");  // a trailing '/' is dropped
  EXPECT_EQ(get_ok("/api/info?path=" + q("data//wide.png"))["width"], 600);
  const json sub = get_ok("/api/list?path=data/ph/images");
  EXPECT_EQ(sub["parent"], "data/ph");
  EXPECT_EQ(sub["images"].size(), 1u);
  expect_error(get("/api/list?path=data/wide.png"), 400, "not a folder", "list of a file");
  expect_error(get("/api/list"), 400, "\"path\"", "list without path");

  const json info = get_ok("/api/info?path=data/wide.png");
  EXPECT_EQ(info["path"], "data/wide.png");
  EXPECT_EQ(info["width"], 600);
  EXPECT_EQ(info["height"], 300);
  EXPECT_EQ(info["tile_size"], 256);
  EXPECT_EQ(info["max_zoom"], 2);  // ceil(log2(600 / 256))
  EXPECT_EQ(info["bit_depth"], 8);
  EXPECT_EQ(info["channels"], 3);
  EXPECT_EQ(info["format"], "png");
  EXPECT_EQ(info["calibration_source"], "none");
  EXPECT_EQ(get_ok("/api/info?path=data/wide.png"), info);  // the second answer (cached) is the same
  cv::Mat deep(40, 50, CV_16UC1, cv::Scalar(1000));
  ASSERT_TRUE(cv::imwrite((data_ / "deep.png").string(), deep));
  const json deep_info = get_ok("/api/info?path=data/deep.png");
  EXPECT_EQ(deep_info["bit_depth"], 16);
  EXPECT_EQ(deep_info["width"], 50);
  // A file rewritten with the same name is read again.
  ASSERT_TRUE(cv::imwrite((data_ / "deep.png").string(), cv::Mat(30, 70, CV_8UC1, cv::Scalar(5))));
  fs::last_write_time(data_ / "deep.png", fs::last_write_time(data_ / "deep.png") + std::chrono::seconds(5));
  EXPECT_EQ(get_ok("/api/info?path=data/deep.png")["width"], 70);
  EXPECT_TRUE(info["nm_per_pixel"].is_null());
  EXPECT_EQ(get_ok("/api/info?path=data/ph/images/phantom_0.png")["max_zoom"], 0);  // 256 px
  std::ofstream(data_ / "broken.png") << "not a png";
  {
    auto r = get("/api/info?path=data/broken.png");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
  }

  auto thumb = get("/api/thumb?path=data/wide.png");
  ASSERT_TRUE(thumb);
  ASSERT_EQ(thumb->status, 200) << thumb->body;
  EXPECT_EQ(thumb->get_header_value("Content-Type"), "image/jpeg");
  cv::Mat t = decode(thumb->body);
  EXPECT_EQ(t.cols, 160);
  EXPECT_EQ(t.rows, 80);
  t = decode(get("/api/thumb?path=data/wide.png&size=64")->body);
  EXPECT_EQ(t.cols, 64);
  EXPECT_EQ(t.rows, 32);
  expect_error(get("/api/thumb?path=data/wide.png&size=100000"), 400, "size", "huge thumb");
  expect_error(get("/api/thumb?path=data/wide.png&size=abc"), 400, "size", "thumb size text");
  expect_error(get("/api/thumb?path=data/broken.png"), 400, "broken.png", "thumb of a broken file");

  auto file = get("/api/file?path=data/notes.csv");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->status, 200);
  EXPECT_EQ(file->body, "a\n1\n");
  EXPECT_NE(file->get_header_value("Content-Type").find("text/csv"), std::string::npos);
  auto png = get("/api/file?path=data/wide.png");
  ASSERT_TRUE(png);
  EXPECT_EQ(png->body, read_bytes(data_ / "wide.png"));
  EXPECT_EQ(png->get_header_value("Content-Type"), "image/png");
  std::ofstream(data_ / "run.sh") << "echo";
  expect_error(get("/api/file?path=data/run.sh"), 403, "only PNG", "a shell script");

  const json models = get_ok("/api/models");
  std::map<std::string, std::string> kinds;
  for (const json& m : models["models"]) kinds[m["name"]] = m["kind"];
  if (have_models()) {
    EXPECT_EQ(kinds["tiny"], "sam");
    EXPECT_EQ(kinds["tinydino"], "dinov2");
  }
  EXPECT_EQ(kinds["classical"], "classical");
  EXPECT_NE(models["presets"].dump().find("authors-code"), std::string::npos);
  EXPECT_EQ(models["precisions"], json({"auto", "fp32", "bf16", "int8"}));
}

TEST_F(WorkbenchTest, TilesCoverTheirImageRegion) {
  const cv::Mat rgb = wide_image();
  write_rgb_png(data_ / "wide.png", rgb);
  cv::Mat mask = cv::Mat::zeros(300, 600, CV_8U);
  cv::circle(mask, {300, 130}, 60, cv::Scalar(255), cv::FILLED);
  cv::rectangle(mask, cv::Rect(500, 10, 40, 280), cv::Scalar(1), cv::FILLED);  // non-zero = foreground
  ASSERT_TRUE(cv::imwrite((data_ / "wide.mask.png").string(), mask));
  start();

  auto tile_of = [&](int z, int x, int y, const std::string& style = "image") {
    auto r = get("/api/tile?path=data/" + std::string(style == "mask" ? "wide.mask.png" : "wide.png") +
                 "&z=" + std::to_string(z) + "&x=" + std::to_string(x) + "&y=" + std::to_string(y) + "&style=" + style);
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body.substr(0, 300);
    EXPECT_EQ(r->get_header_value("Content-Type"), style == "mask" ? "image/png" : "image/jpeg");
    return decode(r->body);
  };
  // Mean |tile - expected| over a region, per channel value (tile BGR, expected RGB).
  auto mean_diff = [](const cv::Mat& tile_bgr, const cv::Mat& expected_rgb, cv::Rect in_tile) {
    cv::Mat t;
    cv::cvtColor(tile_bgr(in_tile), t, cv::COLOR_BGR2RGB);
    cv::Mat d;
    cv::absdiff(t, expected_rgb, d);
    const cv::Scalar m = cv::mean(d);
    return (m[0] + m[1] + m[2]) / 3;
  };

  // Zoom 2 (max): one image pixel per tile pixel. Tile (1, 0) = image [256, 512) x [0, 256).
  cv::Mat t = tile_of(2, 1, 0);
  ASSERT_EQ(t.size(), cv::Size(256, 256));
  EXPECT_LT(mean_diff(t, rgb(cv::Rect(256, 0, 256, 256)), cv::Rect(0, 0, 256, 256)), 3.0);
  EXPECT_GT(mean_diff(t, rgb(cv::Rect(0, 0, 256, 256)), cv::Rect(0, 0, 256, 256)), 20.0)
      << "the comparison cannot tell regions apart";
  // The edge tile (2, 1) = image [512, 600) x [256, 300); the rest black.
  t = tile_of(2, 2, 1);
  ASSERT_EQ(t.size(), cv::Size(256, 256));
  EXPECT_LT(mean_diff(t, rgb(cv::Rect(512, 256, 88, 44)), cv::Rect(0, 0, 88, 44)), 4.0);
  EXPECT_LT(cv::mean(t(cv::Rect(100, 60, 156, 196)))[0], 2.0);
  // Zoom 0: 4 x 4 image pixels per tile pixel (their mean), the 600 x 300 image in 150 x 75.
  cv::Mat blocks(75, 150, CV_8UC3);
  for (int by = 0; by < 75; ++by)
    for (int bx = 0; bx < 150; ++bx)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < 4; ++dy)
          for (int dx = 0; dx < 4; ++dx) sum += rgb.at<cv::Vec3b>(by * 4 + dy, bx * 4 + dx)[c];
        blocks.at<cv::Vec3b>(by, bx)[c] = uchar((sum + 8) / 16);
      }
  t = tile_of(0, 0, 0);
  ASSERT_EQ(t.size(), cv::Size(256, 256));
  EXPECT_LT(mean_diff(t, blocks, cv::Rect(0, 0, 150, 75)), 3.0);
  EXPECT_LT(cv::mean(t(cv::Rect(0, 90, 256, 166)))[0], 2.0);
  // Zoom 1: 2 x 2 per pixel; tile (1, 0) = image [512, 600) x [0, 300) in 44 x 150.
  t = tile_of(1, 1, 0);
  cv::Mat half;
  cv::resize(rgb(cv::Rect(512, 0, 88, 300)), half, cv::Size(44, 150), 0, 0, cv::INTER_AREA);
  EXPECT_LT(mean_diff(t, half, cv::Rect(0, 0, 44, 150)), 3.0);

  // Mask style, exact (PNG): background transparent, foreground yellow; its outline opaque.
  for (const auto& [x, y] : std::vector<std::pair<int, int>>{{1, 0}, {2, 0}}) {
    const cv::Mat m = tile_of(2, x, y, "mask");
    ASSERT_EQ(m.type(), CV_8UC4);
    ASSERT_EQ(m.size(), cv::Size(256, 256));
    int fg = 0, outline = 0;
    for (int ty = 0; ty < 256; ++ty)
      for (int tx = 0; tx < 256; ++tx) {
        const int ix = x * 256 + tx, iy = y * 256 + ty;
        const bool in_image = ix < 600 && iy < 300;
        const bool on = in_image && mask.at<uchar>(iy, ix) != 0;
        const cv::Vec4b p = m.at<cv::Vec4b>(ty, tx);  // BGRA
        if (!on) {
          ASSERT_EQ(p[3], 0) << "background at " << ix << "," << iy;
          continue;
        }
        ++fg;
        ASSERT_EQ(p[0], 0);
        ASSERT_EQ(p[1], 220);
        ASSERT_EQ(p[2], 255);
        bool inner = true;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            const int nx = tx + dx, ny = ty + dy;
            const int jx = x * 256 + nx, jy = y * 256 + ny;  // across the tile's edge too (no seams)
            if (jx < 0 || jy < 0 || jx >= 600 || jy >= 300) continue;  // the image's border
            inner = inner && mask.at<uchar>(jy, jx) != 0;
          }
        ASSERT_EQ(p[3], inner ? 110 : 255) << "at " << ix << "," << iy;
        outline += !inner;
      }
    EXPECT_GT(fg, 1000);
    EXPECT_GT(outline, 100);
  }

  // Past the pyramid: 404; bad parameters: 400.
  expect_error(get("/api/tile?path=data/wide.png&z=2&x=3&y=0"), 404, "no such tile", "x past the image");
  expect_error(get("/api/tile?path=data/wide.png&z=2&x=0&y=2"), 404, "no such tile", "y past the image");
  expect_error(get("/api/tile?path=data/wide.png&z=3&x=0&y=0"), 404, "zoom", "zoom past max");
  expect_error(get("/api/tile?path=data/wide.png&z=0&x=-1&y=0"), 400, "\"x\"", "negative x");
  expect_error(get("/api/tile?path=data/wide.png&z=99999999999999999999&x=0&y=0"), 400, "\"z\"", "huge z");
  expect_error(get("/api/tile?path=data/wide.png&z=0&x=0&y=1e3"), 400, "\"y\"", "y not an integer");
  expect_error(get("/api/tile?path=data/wide.png&z=0&x=0&y=0&style=nope"), 400, "style", "unknown style");
  expect_error(get("/api/tile?path=data/wide.png&x=0&y=0"), 400, "\"z\"", "no z");
}

// ---- annotation --------------------------------------------------------------------

TEST_F(WorkbenchTest, ClicksGiveTheLibrarysMasks) {
  NEPHRO_REQUIRE_MODELS();
  const cv::Mat rgb = sam_image();
  write_rgb_png(data_ / "cells.png", rgb);
  start();
  const auto model = nephroseg::sam::SamModel::load(nephroseg::test::shared_path(kSam),
                                                    nephroseg::sam::SamConfig::from_json(nephroseg::test::shared_path(kSamConfig)));
  const auto emb = model->encode(nephroseg::io::mat_to_tensor(rgb));
  auto session_mask = [&](const std::string& s) {
    auto r = get("/api/annotate/mask?session=" + s);
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
    return decode(r->body);
  };

  const json s = post_ok("/api/annotate/start", {{"path", "data/cells.png"}, {"model", "tiny"}});
  const std::string id = s["session"];
  EXPECT_EQ(s["width"], 160);
  EXPECT_EQ(s["height"], 120);
  EXPECT_EQ(s["version"], 0);
  EXPECT_EQ(s["area"], 0);

  // One point: SAM's multimask output, its best-IoU mask.
  nephroseg::sam::SamPrompt p1;
  p1.points = {{60.f, 55.f}};
  p1.labels = {1};
  p1.multimask = true;
  const auto r1 = model->predict(emb, p1);
  const int64_t k = r1.best_index();
  const cv::Mat want1 = nephroseg::io::tensor_to_mat(r1.masks[k]) != 0;
  const json c1 = post_ok("/api/annotate/click", {{"session", id}, {"points", {{60, 55, 1}}}});
  EXPECT_EQ(c1["version"], 1);
  EXPECT_EQ(c1["area"], cv::countNonZero(want1));
  EXPECT_NEAR(c1["iou"].get<double>(), r1.iou[k].item<double>(), 1e-5);
  EXPECT_GE(c1["ms"].get<double>(), 0.0);
  cv::Mat got = session_mask(id);
  ASSERT_EQ(got.size(), rgb.size());
  EXPECT_EQ(cv::countNonZero(got != want1), 0);
  EXPECT_EQ(cv::countNonZero((got != 0) & (got != 255)), 0) << "the mask is not 0/255";

  // Two points: one mask, with the previous result's low-res logits as mask input.
  nephroseg::sam::SamPrompt p2;
  p2.points = {{60.f, 55.f}, {125.f, 85.f}};
  p2.labels = {1, 0};
  p2.mask_input = r1.low_res_logits[k].unsqueeze(0);
  const auto r2 = model->predict(emb, p2);
  const cv::Mat want2 = nephroseg::io::tensor_to_mat(r2.masks[0]) != 0;
  const int informative = cv::countNonZero(want2);
  EXPECT_GT(informative, 0);
  EXPECT_LT(informative, 160 * 120);
  const json c2 = post_ok("/api/annotate/click", {{"session", id}, {"points", {{60, 55, 1}, {125, 85, 0}}}});
  EXPECT_EQ(c2["version"], 2);
  EXPECT_EQ(c2["area"], informative);
  EXPECT_NEAR(c2["iou"].get<double>(), r2.iou[0].item<double>(), 1e-5);
  EXPECT_EQ(cv::countNonZero(session_mask(id) != want2), 0);
  // Without the mask input the answer would differ (the test can tell).
  nephroseg::sam::SamPrompt p2b = p2;
  p2b.mask_input = at::Tensor();
  const auto r2b = model->predict(emb, p2b);
  if (cv::countNonZero((nephroseg::io::tensor_to_mat(r2b.masks[0]) != 0) != want2) == 0)
    std::cout << "note: the tiny model ignores the mask input on this prompt\n";

  // A box: single mask, again with the previous logits.
  nephroseg::sam::SamPrompt p3;
  p3.box = std::array<float, 4>{30, 25, 95, 90};
  p3.mask_input = r2.low_res_logits[0].unsqueeze(0);
  const auto r3 = model->predict(emb, p3);
  post_ok("/api/annotate/click", {{"session", id}, {"points", nullptr}, {"box", {95, 90, 30, 25}}});
  EXPECT_EQ(cv::countNonZero(session_mask(id) != (nephroseg::io::tensor_to_mat(r3.masks[0]) != 0)), 0);

  // Undo returns to the two-point state with its logits: the same box again refines the
  // two-point result (r2's logits), not the undone box result.
  post_ok("/api/annotate/undo", {{"session", id}});
  EXPECT_EQ(cv::countNonZero(session_mask(id) != want2), 0);
  post_ok("/api/annotate/click", {{"session", id}, {"points", nullptr}, {"box", {95, 90, 30, 25}}});
  EXPECT_EQ(cv::countNonZero(session_mask(id) != (nephroseg::io::tensor_to_mat(r3.masks[0]) != 0)), 0);

  // The same image's embedding was computed once (the cache of /sam/).
  EXPECT_EQ(server_->cache_misses(), 1);
  EXPECT_EQ(server_->cache_hits(), 3);

  // A MedSAM entry (the tiny SAM with MedSAM's preprocessing): boxes only, each one a
  // fresh single-mask prompt (no mask input), again and again.
  {
    json config = json::parse(read_bytes(nephroseg::test::shared_path(kSamConfig)));
    config["preprocess"] = "medsam";
    std::ofstream(fs::path(base_) / "medsam_tiny.json") << config.dump();
  }
  const auto medsam = nephroseg::sam::SamModel::load(
      nephroseg::test::shared_path(kSam), nephroseg::sam::SamConfig::from_json(base_ + "/medsam_tiny.json"));
  const auto memb = medsam->encode(nephroseg::io::mat_to_tensor(rgb));
  // (Served by a second server with a medsam entry in its weights file.)
  {
    json weights = json::parse(read_bytes(options_.weights_file));
    weights.push_back({{"name", "tinymed"},
                       {"kind", "medsam"},
                       {"checkpoint", nephroseg::test::shared_path(kSam)},
                       {"model_config", base_ + "/medsam_tiny.json"},
                       {"precision", "fp32"}});
    std::ofstream(fs::path(base_) / "weights2.json") << weights.dump(1);
    ServeOptions o = options_;
    o.weights_file = base_ + "/weights2.json";
    Server med(o);
    httplib::Client mc("127.0.0.1", med.start());
    mc.set_read_timeout(120, 0);
    auto mpost = [&](const std::string& path, const json& body) {
      return mc.Post(path.c_str(), body.dump(), "application/json");
    };
    const json ms = json::parse(mpost("/api/annotate/start", {{"path", "data/cells.png"}, {"model", "tinymed"}})->body);
    ASSERT_TRUE(ms.contains("session")) << ms.dump();
    for (const auto& box : std::vector<std::array<float, 4>>{{30, 25, 95, 90}, {100, 60, 150, 110}}) {
      nephroseg::sam::SamPrompt mp;
      mp.box = box;
      const auto mr = medsam->predict(memb, mp);
      auto res = mpost("/api/annotate/click", {{"session", ms["session"]}, {"points", json::array()},
                                               {"box", {box[0], box[1], box[2], box[3]}}});
      ASSERT_TRUE(res);
      ASSERT_EQ(res->status, 200) << res->body;
      const cv::Mat got_m = decode(mc.Get(("/api/annotate/mask?session=" + ms["session"].get<std::string>()).c_str())->body);
      EXPECT_EQ(cv::countNonZero(got_m != (nephroseg::io::tensor_to_mat(mr.masks[0]) != 0)), 0);
    }
    auto res = mpost("/api/annotate/click", {{"session", ms["session"]}, {"points", {{60, 55, 1}}}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400);
    EXPECT_NE(detail_of(res).find("MedSAM"), std::string::npos) << detail_of(res);
    med.stop();
  }

  // Bad clicks.
  expect_error(post("/api/annotate/click", {{"session", id}, {"points", {{500, 55, 1}}}}), 400, "outside",
               "point outside");
  expect_error(post("/api/annotate/click", {{"session", id}, {"points", {{5, 5, 2}}}}), 400, "label", "bad label");
  expect_error(post("/api/annotate/click", {{"session", id}, {"points", {{5, 5}}}}), 400, "[x, y, label]", "no label");
  expect_error(post("/api/annotate/click", {{"session", id}}), 400, "points", "nothing");
  json many = json::array();
  for (int i = 0; i < 1000; ++i) many.push_back({i % 100, 5, 1});
  expect_error(post("/api/annotate/click", {{"session", id}, {"points", many}}), 400, "at most", "too many points");
  expect_error(post("/api/annotate/click", {{"session", "s999"}, {"points", {{5, 5, 1}}}}), 404, "s999",
               "unknown session");
  expect_error(post("/api/annotate/start", {{"path", "data/cells.png"}, {"model", "nope"}}), 404, "nope",
               "unknown model");
  expect_error(post("/api/annotate/start", {{"path", "data/cells.png"}, {"model", "tinydino"}}), 400, "dinov2",
               "a DINOv2 entry cannot click");
  {
    auto r = client_->Post("/api/annotate/click", "{not json", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
  }
  // Still serving, the session unharmed.
  EXPECT_EQ(cv::countNonZero(session_mask(id) != (nephroseg::io::tensor_to_mat(r3.masks[0]) != 0)), 0);
}

TEST_F(WorkbenchTest, BrushUndoRedoSaveAndSessionBound) {
  NEPHRO_REQUIRE_MODELS();
  write_rgb_png(data_ / "cells.png", sam_image());
  start();
  const json s = post_ok("/api/annotate/start", {{"path", "data/cells.png"}, {"model", "classical"}});
  const std::string id = s["session"];
  auto mask_now = [&] { return decode(get("/api/annotate/mask?session=" + id)->body); };

  // A stroke of radius 6 from (20, 30) to (80, 30): pixels whose centre lies within ~6 px
  // of the segment are painted (checked with a pixel of slack at the rim).
  const json b1 = post_ok("/api/annotate/brush", {{"session", id}, {"points", {{20, 30}, {80, 30}}}, {"radius", 6}});
  EXPECT_EQ(b1["version"], 1);
  const cv::Mat m1 = mask_now();
  EXPECT_EQ(b1["area"], cv::countNonZero(m1));
  auto dist = [](int x, int y) {  // to the segment (20, 30)-(80, 30), pixel centres
    const double px = x + 0.5, py = y + 0.5;
    const double cx = std::clamp(px, 20.5, 80.5);
    return std::hypot(px - cx, py - 30.5);
  };
  for (int y = 0; y < m1.rows; ++y)
    for (int x = 0; x < m1.cols; ++x) {
      const double d = dist(x, y);
      if (d <= 4.5) ASSERT_EQ(m1.at<uchar>(y, x), 255) << x << "," << y;
      if (d >= 7.0) ASSERT_EQ(m1.at<uchar>(y, x), 0) << x << "," << y;
    }
  // Erase the middle.
  const json b2 = post_ok("/api/annotate/brush",
                          {{"session", id}, {"points", {{50, 30}}}, {"radius", 10}, {"erase", true}});
  EXPECT_EQ(b2["version"], 2);
  const cv::Mat m2 = mask_now();
  EXPECT_EQ(m2.at<uchar>(30, 50), 0);
  EXPECT_EQ(m2.at<uchar>(30, 25), 255);
  EXPECT_LT(b2["area"].get<int>(), b1["area"].get<int>());

  // Undo twice, redo once.
  json u = post_ok("/api/annotate/undo", {{"session", id}});
  EXPECT_EQ(u["area"], b1["area"]);
  EXPECT_EQ(cv::countNonZero(mask_now() != m1), 0);
  u = post_ok("/api/annotate/undo", {{"session", id}});
  EXPECT_EQ(u["area"], 0);
  const int v_before = u["version"];
  u = post_ok("/api/annotate/undo", {{"session", id}});  // nothing more to undo: unchanged
  EXPECT_EQ(u["area"], 0);
  EXPECT_EQ(u["version"], v_before);
  u = post_ok("/api/annotate/redo", {{"session", id}});
  EXPECT_EQ(cv::countNonZero(mask_now() != m1), 0);
  u = post_ok("/api/annotate/redo", {{"session", id}});
  EXPECT_EQ(cv::countNonZero(mask_now() != m2), 0);
  EXPECT_EQ(u["area"], b2["area"]);

  // The history is bounded: 40 strokes, then at most 32 undone.
  {
    const std::string h = post_ok("/api/annotate/start", {{"path", "data/cells.png"}, {"model", "classical"}})["session"];
    for (int i = 0; i < 40; ++i)
      post_ok("/api/annotate/brush", {{"session", h}, {"points", {{2 + 3 * i, 100}}}, {"radius", 1}});
    int undone = 0;
    for (int i = 0; i < 40; ++i) {
      const json st = post_ok("/api/annotate/undo", {{"session", h}});
      if (i == 0) EXPECT_EQ(st["can_undo"], true);
      if (!st["can_undo"].get<bool>()) {
        undone = i + 1;
        break;
      }
    }
    EXPECT_EQ(undone, 32);
    EXPECT_EQ(cv::countNonZero(decode(get("/api/annotate/mask?session=" + h)->body)), 8);  // 8 strokes stay
  }

  // The session's tile equals a mask tile of the mask.
  auto tile = get("/api/annotate/tile?session=" + id + "&z=0&x=0&y=0&v=9");
  ASSERT_TRUE(tile);
  ASSERT_EQ(tile->status, 200);
  const cv::Mat t = decode(tile->body);
  ASSERT_EQ(t.type(), CV_8UC4);
  for (int y = 0; y < 120; ++y)
    for (int x = 0; x < 160; ++x) ASSERT_EQ(t.at<cv::Vec4b>(y, x)[3] != 0, m2.at<uchar>(y, x) != 0) << x << "," << y;

  // Save: default <stem>.mask.png beside the image, exactly the mask, 0/255.
  const json saved = post_ok("/api/annotate/save", {{"session", id}});
  EXPECT_EQ(saved["path"], "data/cells.mask.png");
  EXPECT_EQ(saved["area"], b2["area"]);
  const cv::Mat file = cv::imread((data_ / "cells.mask.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(file.type(), CV_8UC1);
  EXPECT_EQ(cv::countNonZero(file != m2), 0);
  EXPECT_EQ(cv::countNonZero((file != 0) & (file != 255)), 0);
  fs::create_directories(data_ / "masks");
  EXPECT_EQ(post_ok("/api/annotate/save", {{"session", id}, {"out", "data/masks/c.png"}})["path"], "data/masks/c.png");
  EXPECT_EQ(cv::countNonZero(cv::imread((data_ / "masks" / "c.png").string(), cv::IMREAD_UNCHANGED) != m2), 0);
  EXPECT_TRUE(nephroseg::test::temporaries_under(data_.string()).empty());
  expect_error(post("/api/annotate/save", {{"session", id}, {"out", "data/masks/c.txt"}}), 400, ".png", "not a png");
  expect_error(post("/api/annotate/save", {{"session", id}, {"out", "data/nofolder/c.png"}}), 404, "folder",
               "missing folder");
  expect_error(post("/api/annotate/save", {{"session", id}, {"out", "data/cells.png"}}), 400, "own image",
               "over the image");

  // A session started from a mask.
  const json s2 = post_ok("/api/annotate/start",
                          {{"path", "data/cells.png"}, {"model", "tiny"}, {"mask", "data/cells.mask.png"}});
  EXPECT_EQ(s2["area"], b2["area"]);
  std::ofstream(data_ / "small.png") << "";
  cv::imwrite((data_ / "small.png").string(), cv::Mat::zeros(10, 10, CV_8U));
  expect_error(post("/api/annotate/start", {{"path", "data/cells.png"}, {"model", "tiny"}, {"mask", "data/small.png"}}),
               400, "10 x 10", "a mask of another size");

  // Bad strokes.
  expect_error(post("/api/annotate/brush", {{"session", id}, {"points", {{1, 1}}}, {"radius", 100000}}), 400,
               "radius", "huge radius");
  expect_error(post("/api/annotate/brush", {{"session", id}, {"points", json::array()}, {"radius", 3}}), 400,
               "points", "no points");
  expect_error(post("/api/annotate/brush", {{"session", id}, {"points", {{1, 1}}}}), 400, "radius", "no radius");
  expect_error(post("/api/annotate/brush", {{"session", id}, {"points", {{1e300, 1}}}, {"radius", 3}}), 400,
               "finite", "far point");
  json long_stroke = json::array();
  for (int i = 0; i < 30000; ++i) long_stroke.push_back({i % 160, 5});
  expect_error(post("/api/annotate/brush", {{"session", id}, {"points", long_stroke}, {"radius", 3}}), 400, "at most",
               "stroke too long");

  // The weight-free point segmenter answers clicks too (no IoU), and takes no box.
  const json c = post_ok("/api/annotate/click", {{"session", id}, {"points", {{60, 55, 1}, {130, 20, 0}}}});
  EXPECT_TRUE(c["iou"].is_null());
  EXPECT_EQ(c["area"], cv::countNonZero(mask_now()));
  expect_error(post("/api/annotate/click", {{"session", id}, {"box", {1, 1, 50, 50}}}), 400, "box",
               "a box for the classical segmenter");

  // Close, then the session is gone; sessions beyond the bound push out the oldest.
  post_ok("/api/annotate/close", {{"session", id}});
  expect_error(get("/api/annotate/mask?session=" + id), 404, "no annotation session", "closed session");
  const std::string first = post_ok("/api/annotate/start", {{"path", "data/cells.png"}, {"model", "classical"}})["session"];
  for (int i = 0; i < 40; ++i) post_ok("/api/annotate/start", {{"path", "data/cells.png"}, {"model", "classical"}});
  expect_error(get("/api/annotate/mask?session=" + first), 404, "no annotation session", "evicted session");
}

// ---- GBMSeg jobs, review, export ---------------------------------------------------

TEST_F(WorkbenchTest, GbmSegJobReviewAndExport) {
  NEPHRO_REQUIRE_MODELS();
  write_phantoms(4);
  start();
  const json run_request = {{"references", {{{"image", "data/ph/images/phantom_0.png"}, {"mask", "data/ph/masks/phantom_0.png"}}}},
                            {"targets", {"data/ph/images/phantom_1.png", "data/ph/images/phantom_2.png",
                                         "data/ph/images/phantom_3.png"}},
                            {"ground_truth", "data/ph/masks"},
                            {"out", "data/run1"},
                            {"features", "tinydino"},
                            {"segmenter", "tiny"},
                            {"precision", "fp32"},
                            {"reference_range", "goel1995-thin"},  // not the default: the review must keep it
                            {"nm_per_pixel", 16}};
  const json started = post_ok("/api/gbmseg/run", run_request);
  const std::string job = started["job"];
  const json st = wait_job(job);
  ASSERT_EQ(st["state"], "done") << st.dump();
  EXPECT_EQ(st["done"], 3);
  EXPECT_EQ(st["total"], 3);
  EXPECT_EQ(st["out"], "data/run1");
  EXPECT_TRUE(st["error"].is_null());
  ASSERT_EQ(st["rows"].size(), 3u);
  std::set<std::string> names;
  for (const json& row : st["rows"]) {
    names.insert(row["name"].get<std::string>());
    EXPECT_EQ(row["status"], "ok") << row.dump();
  }
  EXPECT_EQ(names, (std::set<std::string>{"phantom_1", "phantom_2", "phantom_3"}));

  // The run as the review sees it.
  EXPECT_EQ(get_ok("/api/list?path=data")["folders"][1]["is_run"], true);  // ph, run1
  const json run = get_ok("/api/run?path=data/run1");
  EXPECT_EQ(run["path"], "data/run1");
  EXPECT_EQ(run["measured"], true);
  EXPECT_EQ(run["with_ground_truth"], true);
  EXPECT_NE(run["reference_range"].dump().find("goel1995-thin"), std::string::npos) << run["reference_range"].dump();
  ASSERT_EQ(run["rows"].size(), 3u);
  EXPECT_TRUE(run["mean"].is_object());
  const json row0 = run["rows"][0];
  const std::string name = row0["name"];
  EXPECT_EQ(row0["image"], "data/ph/images/" + name + ".png");
  EXPECT_EQ(row0["mask"], "data/run1/" + name + ".png");
  EXPECT_TRUE(row0["overlay"].is_string());
  EXPECT_TRUE(row0["dice"].is_number());
  EXPECT_EQ(row0["review"], "");
  EXPECT_EQ(row0["edited"], false);
  int measured_rows = 0;
  for (const json& r : run["rows"]) {
    EXPECT_EQ(r["thickness_map"].is_string(), r["thickness_oi_harmonic_3d_nm"].is_number()) << r.dump();
    measured_rows += r["thickness_oi_harmonic_3d_nm"].is_number();
  }
  EXPECT_GT(measured_rows, 0) << "no target of the tiny models was measured";
  EXPECT_TRUE(row0["prompts"]["positive"].is_array());
  EXPECT_GT(row0["prompts"]["positive"].size(), 0u);
  for (const json& p : row0["prompts"]["positive"]) {
    EXPECT_GE(p[0].get<double>(), 0.0);
    EXPECT_LE(p[0].get<double>(), 256.0);
  }
  for (const json& c : run["columns"]) EXPECT_TRUE(row0.contains(c.get<std::string>())) << c;
  auto overlay = get("/api/file?path=" + q(row0["overlay"].get<std::string>()));
  ASSERT_TRUE(overlay);
  EXPECT_EQ(overlay->status, 200);

  // Mark one accepted, one rejected.
  post_ok("/api/review/mark", {{"run", "data/run1"}, {"name", run["rows"][1]["name"]}, {"review", "accepted"}});
  post_ok("/api/review/mark", {{"run", "data/run1"}, {"name", run["rows"][2]["name"]}, {"review", "rejected"}});
  expect_error(post("/api/review/mark", {{"run", "data/run1"}, {"name", "nope"}, {"review", "accepted"}}), 404, "nope",
               "mark an unknown target");
  expect_error(post("/api/review/mark", {{"run", "data/run1"}, {"name", name}, {"review", "maybe"}}), 400, "review",
               "mark with a bad verdict");

  // Correct the first target: start from its mask, paint a band, save into the run.
  const cv::Mat original = cv::imread((data_ / "run1" / (name + ".png")).string(), cv::IMREAD_UNCHANGED);
  const json s = post_ok("/api/annotate/start", {{"path", row0["image"]}, {"model", "tiny"}, {"mask", row0["mask"]}});
  // Erase all, paint one straight band about 15 px thick (measurable, unlike what the
  // tiny models found).
  post_ok("/api/annotate/brush", {{"session", s["session"]}, {"points", {{128, 128}}}, {"radius", 400}, {"erase", true}});
  post_ok("/api/annotate/brush", {{"session", s["session"]}, {"points", {{10, 120}, {245, 140}}}, {"radius", 8}});
  const cv::Mat corrected = decode(get("/api/annotate/mask?session=" + s["session"].get<std::string>())->body);
  ASSERT_NE(cv::countNonZero(corrected != original), 0);
  const json saved = post_ok("/api/review/save", {{"run", "data/run1"}, {"name", name}, {"session", s["session"]}});
  const json& row = saved["row"];
  EXPECT_EQ(row["name"], name);
  EXPECT_EQ(row["edited"], true);
  EXPECT_EQ(row["auto_mask"], "data/run1/" + name + ".auto.png");
  // The files: the original kept, the correction written exactly.
  EXPECT_EQ(cv::countNonZero(cv::imread((data_ / "run1" / (name + ".auto.png")).string(), cv::IMREAD_UNCHANGED) != original), 0);
  const cv::Mat written = cv::imread((data_ / "run1" / (name + ".png")).string(), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(cv::countNonZero((written != 0) != corrected), 0);
  EXPECT_TRUE(nephroseg::test::temporaries_under((data_ / "run1").string()).empty());
  // `nephroseg measure` on the saved mask at the run's 16 nm per pixel gives the same numbers.
  nephroseg::workloads::MeasureBatchOptions mo;
  mo.mask = (data_ / "run1" / (name + ".png")).string();
  mo.nm_per_pixel = "16";
  mo.range = nephroseg::measure::find_reference_range("goel1995-thin");  // the run's range
  mo.out_dir = base_ + "/measured";
  const auto measured = nephroseg::workloads::run_measure_batch(mo);
  ASSERT_EQ(measured.results.size(), 1u);
  const auto& m = measured.results[0];
  const double k = m.nm_per_pixel;
  EXPECT_EQ(k, 16.0);
  const double want_oi = m.oi_stereological_harmonic_px * k;
  const json summary = json::parse(read_bytes(fs::path(mo.out_dir) / "summary.json"));
  const double oi = row["thickness_oi_harmonic_3d_nm"].get<double>();
  EXPECT_NEAR(oi, want_oi, 1e-9 * want_oi);
  EXPECT_NEAR(oi, summary["images"][0]["oi_stereological_harmonic_nm"].get<double>(), 1e-9 * want_oi);
  EXPECT_NEAR(row["thickness_direct_median_nm"].get<double>(), m.direct.median * k, 1e-9 * m.direct.median * k);
  EXPECT_NEAR(row["thickness_direct_mean_nm"].get<double>(), m.direct.mean * k, 1e-9 * m.direct.mean * k);
  EXPECT_EQ(row["thickness_class"], summary["images"][0]["class"]);
  EXPECT_EQ(row["thickness_class"],
            nephroseg::measure::classify_thickness(
                nephroseg::measure::reference_value_nm(m, nephroseg::measure::find_reference_range("goel1995-thin")),
                nephroseg::measure::find_reference_range("goel1995-thin")));
  EXPECT_GT(oi, 100.0);
  if (row0["thickness_oi_harmonic_3d_nm"].is_number())
    EXPECT_NE(oi, row0["thickness_oi_harmonic_3d_nm"].get<double>()) << "the correction changed nothing measurable";
  EXPECT_NE(row["dice"], row0["dice"]);
  // The record, the summary's mean row and the run listing agree.
  const json record = json::parse(read_bytes(data_ / "run1" / (name + ".prompts.json")));
  EXPECT_EQ(record["edited"], true);
  EXPECT_NEAR(record["thickness"]["oi_harmonic_3d_nm"].get<double>(), want_oi, 1e-9 * want_oi);
  const json after = get_ok("/api/run?path=data/run1");
  double sum = 0;
  int n = 0;
  for (const json& r : after["rows"]) {
    if (r["name"] == name) EXPECT_EQ(r["edited"], true);
    sum += r["dice"].get<double>();
    ++n;
  }
  ASSERT_TRUE(after["mean"].is_object());
  ASSERT_EQ(n, 3);
  EXPECT_NEAR(after["mean"]["dice"].get<double>(), sum / n, 1e-9) << "the mean row was not recomputed";
  // A second correction keeps the first original.
  post_ok("/api/annotate/brush", {{"session", s["session"]}, {"points", {{20, 20}}}, {"radius", 5}});
  post_ok("/api/review/save", {{"run", "data/run1"}, {"name", name}, {"session", s["session"]}});
  EXPECT_EQ(cv::countNonZero(cv::imread((data_ / "run1" / (name + ".auto.png")).string(), cv::IMREAD_UNCHANGED) != original), 0);
  expect_error(post("/api/review/save", {{"run", "data/run1"}, {"name", "nope"}, {"session", s["session"]}}), 400,
               "nope", "save an unknown target");
  expect_error(post("/api/review/save", {{"run", "data/run1"}, {"name", name}, {"session", "s999"}}), 404, "s999",
               "save an unknown session");

  // Export: the summary with edited and review columns.
  auto csv = get("/api/export/summary.csv?run=data/run1");
  ASSERT_TRUE(csv);
  ASSERT_EQ(csv->status, 200);
  EXPECT_NE(csv->get_header_value("Content-Type").find("text/csv"), std::string::npos);
  const std::string csv_path = base_ + "/export.csv";
  std::ofstream(csv_path) << csv->body;
  const auto rows = nephroseg::io::read_csv(csv_path);
  ASSERT_EQ(rows.size(), 5u);  // header, 3 targets, mean
  const auto& header = rows[0];
  ASSERT_GE(header.size(), 2u);
  EXPECT_EQ(header[header.size() - 2], "edited");
  EXPECT_EQ(header.back(), "review");
  std::map<std::string, std::pair<std::string, std::string>> flags;
  for (size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), header.size()) << "row " << i;
    flags[rows[i][0]] = {rows[i][header.size() - 2], rows[i].back()};
  }
  EXPECT_EQ(flags[name], (std::pair<std::string, std::string>{"1", ""}));
  EXPECT_EQ(flags[run["rows"][1]["name"]], (std::pair<std::string, std::string>{"0", "accepted"}));
  EXPECT_EQ(flags[run["rows"][2]["name"]], (std::pair<std::string, std::string>{"0", "rejected"}));
  auto report = get("/api/export/report?run=data/run1");
  ASSERT_TRUE(report);
  EXPECT_EQ(report->status, 200);
  EXPECT_NE(report->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_EQ(report->body, read_bytes(data_ / "run1" / "report.html"));
  // Export: the masks as a stored zip, parsed here.
  auto zip = get("/api/export/masks.zip?run=data/run1");
  ASSERT_TRUE(zip);
  ASSERT_EQ(zip->status, 200);
  EXPECT_EQ(zip->get_header_value("Content-Type"), "application/zip");
  const auto members = unzip_stored(zip->body);
  std::set<std::string> want = {name + ".auto.png"};
  for (const json& r : run["rows"]) want.insert(r["name"].get<std::string>() + ".png");
  std::set<std::string> got;
  for (const auto& [member, data] : members) {
    got.insert(member);
    EXPECT_EQ(data, read_bytes(data_ / "run1" / member)) << member;
  }
  EXPECT_EQ(got, want);
  expect_error(get("/api/export/nope?run=data/run1"), 404, "no export", "unknown export");
  expect_error(get("/api/export/masks.zip?run=data/ph"), 404, "summary.csv", "zip of a folder that is no run");
  expect_error(get("/api/run?path=data/ph"), 404, "no GBMSeg run", "a folder that is no run");
}

TEST_F(WorkbenchTest, JobsConflictCancelAndBadRequests) {
  NEPHRO_REQUIRE_MODELS();
  write_phantoms(12, 128);
  start();
  json targets = json::array();
  for (int i = 1; i < 12; ++i) targets.push_back("data/ph/images/phantom_" + std::to_string(i) + ".png");
  const json request = {{"references", {{{"image", "data/ph/images/phantom_0.png"}, {"mask", "data/ph/masks/phantom_0.png"}}}},
                        {"targets", targets},
                        {"out", "data/run2"},
                        {"features", "tinydino"},
                        {"segmenter", "tiny"},
                        {"nm_per_pixel", 16}};
  const std::string job = post_ok("/api/gbmseg/run", request)["job"];
  // A second job on the same folder while the first runs: 409.
  expect_error(post("/api/gbmseg/run", request), 409, "already", "a second job on the folder");
  const json cancelled = post_ok("/api/jobs/" + job + "/cancel", json::object());
  EXPECT_TRUE(cancelled["state"] == "cancelling" || cancelled["state"] == "cancelled") << cancelled.dump();
  const json st = wait_job(job);
  EXPECT_EQ(st["state"], "cancelled") << st.dump();
  EXPECT_LT(st["done"].get<int>(), 11);
  EXPECT_EQ(st["rows"].size(), st["done"].get<size_t>());
  // After the cancel, the folder is free again (classical backends this time).
  json classical = request;
  classical["features"] = "classical";
  classical["segmenter"] = "classical";
  classical["targets"] = {"data/ph/images/phantom_1.png"};
  classical["overwrite"] = true;
  const json st2 = wait_job(post_ok("/api/gbmseg/run", classical)["job"]);
  EXPECT_EQ(st2["state"], "done") << st2.dump();
  EXPECT_EQ(st2["rows"].size(), 1u);

  // A folder of targets (saved references, *.mask.png, are left out), no ground truth.
  cv::imwrite((data_ / "ph" / "images" / "phantom_0.mask.png").string(), cv::Mat::zeros(128, 128, CV_8U));
  json by_folder = classical;
  by_folder.erase("targets");
  by_folder["folder"] = "data/ph/images";
  by_folder["out"] = "data/run5";
  const json st3 = wait_job(post_ok("/api/gbmseg/run", by_folder)["job"]);
  EXPECT_EQ(st3["state"], "done") << st3.dump();
  EXPECT_EQ(st3["total"], 12);
  EXPECT_EQ(st3["rows"].size(), 12u);
  EXPECT_EQ(get_ok("/api/run?path=data/run5")["with_ground_truth"], false);

  // Bad requests.
  expect_error(get("/api/jobs/j999"), 404, "j999", "unknown job");
  auto bad = [&](const std::string& key, const json& value, int status, const std::string& needle) {
    json b = request;
    if (value.is_null())
      b.erase(key);
    else
      b[key] = value;
    expect_error(post("/api/gbmseg/run", b), status, needle, key + " = " + value.dump());
  };
  bad("references", json::array(), 400, "references");
  bad("references", nullptr, 400, "references");
  bad("targets", json::array(), 400, "targets");
  bad("targets", {"data/ph/images/nope.png"}, 404, "nope.png");
  bad("out", nullptr, 400, "\"out\"");
  bad("out", "data/ph/images/phantom_1.png", 400, "not a folder");
  bad("out", "data/ph/images", 400, "holds input images");  // would overwrite the targets
  bad("out", "data/ph/masks/", 400, "holds input images");   // the references' masks
  // A folder that cannot be made: a clear 400, and the folder is not left "in use".
  bad("out", "data/ph/images/phantom_1.png/run", 400, "cannot create");
  bad("out", "data/ph/images/phantom_1.png/run", 400, "cannot create");
  bad("features", "tiny", 400, "dinov2");
  bad("segmenter", "tinydino", 400, "sam");
  bad("features", "nope", 404, "nope");
  bad("precision", "fp64", 400, "precision");
  bad("preset", "nope", 400, "preset");
  bad("nm_per_pixel", -3, 400, "nm_per_pixel");
  bad("nm_per_pixel", "big", 400, "nm_per_pixel");
  expect_error(client_->Post("/api/gbmseg/run", "[1, 2]", "application/json"), 400, "object", "a list body");
  // The server still runs jobs.
  EXPECT_EQ(wait_job(post_ok("/api/gbmseg/run", classical)["job"])["state"], "done");
}

TEST_F(WorkbenchTest, StopCancelsARunningJob) {
  NEPHRO_REQUIRE_MODELS();
  write_phantoms(12, 128);
  start();
  json targets = json::array();
  for (int i = 1; i < 12; ++i) targets.push_back("data/ph/images/phantom_" + std::to_string(i) + ".png");
  post_ok("/api/gbmseg/run",
          {{"references", {{{"image", "data/ph/images/phantom_0.png"}, {"mask", "data/ph/masks/phantom_0.png"}}}},
           {"targets", targets},
           {"out", "data/run3"},
           {"features", "tinydino"},
           {"segmenter", "tiny"},
           {"nm_per_pixel", 16}});
  const auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 30.0) << "stop() waited for the whole job";
  std::cout << "stop() during a job: " << s << " s\n";
  EXPECT_TRUE(nephroseg::test::temporaries_under((data_ / "run3").string()).empty());
}

// `nephroseg serve --root DIR`: SIGTERM while a GBMSeg job runs stops the job after its
// current target and the process exits 0 (no hang), leaving no temporary files.
TEST_F(WorkbenchTest, CliSigtermDuringAJobExits) {
  NEPHRO_REQUIRE_MODELS();
  if (!nephroseg::test::have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  write_phantoms(12, 128);
  const std::string log = base_ + "/serve.log";
  const std::string exe = nephroseg::test::binary_dir() + "/nephroseg";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    execl(exe.c_str(), exe.c_str(), "serve", "--port", "0", "--weights", options_.weights_file.c_str(), "--root",
          data_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = 0;
  const std::string marker = "serve: listening on http://127.0.0.1:";
  for (int i = 0; i < 300 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::string text = read_bytes(log);
    const size_t at = text.find(marker);
    if (at != std::string::npos) port = std::atoi(text.c_str() + at + marker.size());
  }
  if (port == 0) kill(pid, SIGKILL);
  ASSERT_GT(port, 0) << "no 'listening' line in " << log << ":\n" << read_bytes(log);
  client_ = std::make_unique<httplib::Client>("127.0.0.1", port);
  client_->set_read_timeout(60, 0);
  json targets = json::array();
  for (int i = 1; i < 12; ++i) targets.push_back("data/ph/images/phantom_" + std::to_string(i) + ".png");
  const json started =
      post_ok("/api/gbmseg/run", {{"references", {{{"image", "data/ph/images/phantom_0.png"}, {"mask", "data/ph/masks/phantom_0.png"}}}},
                                  {"targets", targets},
                                  {"out", "data/run4"},
                                  {"features", "tinydino"},
                                  {"segmenter", "tiny"},
                                  {"nm_per_pixel", 16}});
  EXPECT_TRUE(started.contains("job")) << started.dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const json before = get_ok("/api/jobs/" + started.value("job", std::string()));
  EXPECT_EQ(before["state"], "running") << "the job ended before SIGTERM: the test proves less";
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  pid_t done = 0;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "the server did not exit within 60 s of SIGTERM during a job:\n" << read_bytes(log);
  }
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_bytes(log);
  std::cout << "SIGTERM to exit during a job: "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  EXPECT_TRUE(nephroseg::test::temporaries_under(data_.string()).empty());
}

TEST_F(WorkbenchTest, TokenPrefixAndBearer) {
  options_.token = "s3cret";
  write_rgb_png(data_ / "wide.png", wide_image());
  start();
  expect_error(get("/api/roots"), 401, "token", "no token");
  expect_error(get("/"), 401, "token", "the page without a token");
  EXPECT_EQ(get_ok("/s3cret/api/roots")["roots"][0]["name"], "data");
  EXPECT_EQ(get_ok("/s3cret/api/info?path=data/wide.png")["width"], 600);
  auto page = get("/s3cret/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  auto js = get("/s3cret/app/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  auto tile = get("/s3cret/api/tile?path=data/wide.png&z=0&x=0&y=0");
  ASSERT_TRUE(tile);
  EXPECT_EQ(tile->status, 200);
  const json s = json::parse(client_->Post("/s3cret/api/annotate/start",
                                           json{{"path", "data/wide.png"}, {"model", "classical"}}.dump(),
                                           "application/json")->body);
  EXPECT_TRUE(s.contains("session")) << s.dump();
  httplib::Headers bearer = {{"Authorization", "Bearer s3cret"}};
  auto r = client_->Get("/api/roots", bearer);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  httplib::Headers wrong = {{"Authorization", "Bearer nope"}};
  r = client_->Get("/api/roots", wrong);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  expect_error(get("/nope/api/roots"), 401, "token", "a wrong prefix");
}

}  // namespace

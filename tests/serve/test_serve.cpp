// `nephroseg serve`: samapi's wire protocol on a real socket, checked against the SAM
// library called directly (masks rasterised back from the returned GeoJSON).
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <regex>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/glomsam/rough_boxes.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/sam.h"
#include "nephroseg/serve/server.h"
#include "models/glomsam/internal.h"
#include "models/unet/unet.h"
#include "serve/wire.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using nlohmann::json;
using nephroseg::serve::Server;
using nephroseg::serve::ServeOptions;

namespace {

const char* kCheckpoint = "golden/models/sam_tiny.pth";
const char* kConfig = "golden/models/sam_tiny.json";

/// A 128 x 96 RGB test picture: a bright disk and a dark square on a gradient.
cv::Mat test_image(int shift = 0) {
  cv::Mat rgb(96, 128, CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y)
    for (int x = 0; x < rgb.cols; ++x) rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(uchar(x + shift), uchar(y * 2), 90);
  cv::circle(rgb, {50, 45}, 22, cv::Scalar(250, 240, 230), cv::FILLED);
  cv::rectangle(rgb, cv::Rect(90, 60, 25, 25), cv::Scalar(10, 20, 30), cv::FILLED);
  return rgb;
}
std::string b64png(const cv::Mat& rgb) { return nephroseg::io::base64_encode(nephroseg::io::encode_png(rgb)); }

/// Writes the weights file naming the tiny golden SAM; returns its path.
std::string tiny_weights_file(const std::string& dir) {
  json entry = {{"name", "tiny"},
                {"kind", "sam"},
                {"type", "vit_b"},
                {"checkpoint", nephroseg::test::shared_path(kCheckpoint)},
                {"model_config", nephroseg::test::shared_path(kConfig)},
                {"precision", "fp32"}};
  const std::string path = dir + "/weights.json";
  std::ofstream(path) << json::array({entry}).dump(2);
  return path;
}

/// Fills a GeoJSON Polygon / MultiPolygon at pixel centres (even-odd over all rings),
/// independently of the server's tracer.
cv::Mat rasterise(const json& geometry, cv::Size size) {
  std::vector<std::vector<cv::Point2f>> rings;
  auto add_polygon = [&](const json& polygon) {
    for (const auto& ring : polygon) {
      std::vector<cv::Point2f> r;
      for (const auto& p : ring) r.emplace_back(p[0].get<float>(), p[1].get<float>());
      rings.push_back(r);
    }
  };
  if (geometry["type"] == "Polygon") add_polygon(geometry["coordinates"]);
  else
    for (const auto& polygon : geometry["coordinates"]) add_polygon(polygon);
  cv::Mat mask = cv::Mat::zeros(size, CV_8U);
  for (int y = 0; y < size.height; ++y)
    for (int x = 0; x < size.width; ++x) {
      int inside = 0;
      for (const auto& r : rings)
        if (r.size() >= 3 && cv::pointPolygonTest(r, cv::Point2f(x + 0.5f, y + 0.5f), false) > 0) ++inside;
      mask.at<uchar>(y, x) = (inside % 2) ? 255 : 0;
    }
  return mask;
}

double iou(const cv::Mat& a, const cv::Mat& b) {
  const int inter = cv::countNonZero(a & b), uni = cv::countNonZero(a | b);
  return uni == 0 ? 1.0 : double(inter) / uni;
}

struct Running {
  std::unique_ptr<Server> server;
  std::unique_ptr<httplib::Client> client;
};

Running start(ServeOptions o) {
  o.port = 0;
  Running r;
  r.server = std::make_unique<Server>(o);
  const int port = r.server->start();
  EXPECT_GT(port, 0);
  EXPECT_EQ(port, r.server->port());
  r.client = std::make_unique<httplib::Client>("127.0.0.1", port);
  r.client->set_read_timeout(60, 0);
  return r;
}

httplib::Result post_json(httplib::Client& c, const std::string& path, const json& body) {
  return c.Post(path.c_str(), body.dump(), "application/json");
}

std::string detail_of(const httplib::Result& r) {
  if (!r) return "<no response>";
  const json j = json::parse(r->body, nullptr, false);
  return j.is_object() && j.contains("detail") ? j["detail"].get<std::string>() : "<no detail: " + r->body + ">";
}

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (nephroseg::test::shared_path(kCheckpoint).empty() || nephroseg::test::shared_path(kConfig).empty())
      GTEST_SKIP() << "needs ../shared/" << kCheckpoint << " (golden vectors; absent in a fresh clone;"
                   << " set NEPHROSEG_SHARED to point at it)";
    dir_ = nephroseg::test::temp_dir("serve");
    options_.weights_file = tiny_weights_file(dir_);
    options_.log_requests = true;
  }
  std::string dir_;
  ServeOptions options_;
};

}  // namespace

TEST(ServeWire, ImageHeadersAreReadWithoutDecoding) {
  using nephroseg::serve::wire::read_image_header;
  const std::string png = nephroseg::io::encode_png(test_image());
  const auto h = read_image_header(png, "x");
  EXPECT_EQ(h.format, "png");
  EXPECT_EQ(h.width, 128);
  EXPECT_EQ(h.height, 96);
  std::vector<uchar> jpeg;
  cv::imencode(".jpg", test_image(), jpeg);
  const auto j = read_image_header(std::string(jpeg.begin(), jpeg.end()), "x");
  EXPECT_EQ(j.format, "jpeg");
  EXPECT_EQ(j.width, 128);
  EXPECT_EQ(j.height, 96);
  EXPECT_NE(nephroseg::test::error_of([] { read_image_header("GIF89a......", "b64img"); }).find("not a PNG or JPEG"),
            std::string::npos);
  EXPECT_NE(nephroseg::test::error_of([&] { read_image_header(png.substr(0, 12), "b64img"); }).find("truncated"),
            std::string::npos);
}

TEST(ServeWire, Base64RoundTripAndRejects) {
  using nephroseg::serve::wire::base64_decode;
  const std::string bytes("\x00\x01\xfe\xffhello", 9);
  EXPECT_EQ(base64_decode(nephroseg::io::base64_encode(bytes), "x"), bytes);
  EXPECT_EQ(base64_decode("data:image/png;base64,aGk=", "x"), "hi");
  EXPECT_NE(nephroseg::test::error_of([] { base64_decode("ab$d", "b64img"); }).find("not base64"), std::string::npos);
}

TEST_F(ServeTest, VersionIsPlainText) {
  auto r = start(options_);
  auto res = r.client->Get("/sam/version/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "0.1.0");
  EXPECT_NE(res->get_header_value("Content-Type").find("text/plain"), std::string::npos);
}

TEST_F(ServeTest, WeightsListAndRegistration) {
  const std::string models = dir_ + "/models";
  fs::create_directories(models);
  fs::copy_file(nephroseg::test::shared_path(kCheckpoint), models + "/mine.pth");
  options_.models_dir = models;
  auto r = start(options_);

  auto res = r.client->Get("/sam/weights/?type=vit_b");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body), json::parse(R"([{"type":"vit_b","name":"tiny","url":"nephroseg:tiny"}])"));
  res = r.client->Get("/sam/weights/?type=vit_h");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "[]");

  res = post_json(*r.client, "/sam/weights/", {{"type", "vit_b"}, {"name", "mine"}, {"url", "file://" + models + "/mine.pth"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_NE(res->body.find("mine (file://"), std::string::npos) << res->body;
  EXPECT_NE(res->body.find("is registered"), std::string::npos) << res->body;
  res = r.client->Get("/sam/weights/");
  ASSERT_TRUE(res);
  EXPECT_EQ(json::parse(res->body).size(), 2u) << res->body;
  EXPECT_EQ(json::parse(res->body)[1]["url"], "nephroseg:mine");
  // The same name again: samapi's answer, nothing added.
  res = post_json(*r.client, "/sam/weights/", {{"type", "vit_b"}, {"name", "mine"}, {"url", models + "/mine.pth"}});
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("already exists"), std::string::npos) << res->body;

  res = post_json(*r.client, "/sam/weights/",
                  {{"type", "vit_b"}, {"name", "web"}, {"url", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(detail_of(res).find("never downloads"), std::string::npos) << detail_of(res);

  res = post_json(*r.client, "/sam/weights/",
                  {{"type", "vit_b"}, {"name", "outside"}, {"url", nephroseg::test::shared_path(kCheckpoint)}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(detail_of(res).find("outside the --models folder"), std::string::npos) << detail_of(res);

  res = post_json(*r.client, "/sam/weights/", {{"type", "vit_b"}, {"name", "dots"}, {"url", models + "/../weights.json"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body;

  res = r.client->Get("/sam/progress/");
  ASSERT_TRUE(res);
  EXPECT_EQ(json::parse(res->body), json::parse(R"({"message": null, "percent": -1})"));
  res = r.client->Get("/sam/weights/cancel/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "Cancel signal sent");
}

TEST_F(ServeTest, BoxAndPointsGiveTheLibrarysMasks) {
  auto r = start(options_);
  const cv::Mat rgb = test_image();
  const auto model = nephroseg::sam::SamModel::load(nephroseg::test::shared_path(kCheckpoint),
                                                    nephroseg::sam::SamConfig::from_json(nephroseg::test::shared_path(kConfig)));
  const auto emb = model->encode(nephroseg::io::mat_to_tensor(rgb));

  struct Case {
    json fields;
    nephroseg::sam::SamPrompt prompt;
  };
  std::vector<Case> cases(2);
  cases[0].fields = {{"bbox", {26, 20, 75, 70}}};
  cases[0].prompt.box = std::array<float, 4>{26, 20, 75, 70};
  cases[1].fields = {{"point_coords", {{50, 45}, {100, 70}}}, {"point_labels", {1, 0}}, {"multimask_output", true}};
  cases[1].prompt.points = {{50.f, 45.f}, {100.f, 70.f}};
  cases[1].prompt.labels = {1, 0};
  cases[1].prompt.multimask = true;

  int requests = 0, informative = 0;
  for (const Case& c : cases) {
    json body = c.fields;
    body["type"] = "vit_b";
    body["b64img"] = b64png(rgb);
    auto res = post_json(*r.client, "/sam/", body);
    ++requests;
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json features = json::parse(res->body);
    const auto expected = model->predict(emb, c.prompt);
    ASSERT_EQ(features.size(), static_cast<size_t>(expected.masks.size(0)));
    for (size_t i = 0; i < features.size(); ++i) {
      const json& f = features[i];
      EXPECT_EQ(f["type"], "Feature");
      EXPECT_EQ(f["properties"]["object_idx"], static_cast<int>(i) - 1);  // samapi's numbering
      EXPECT_EQ(f["properties"]["label"], "object");
      EXPECT_EQ(f["properties"]["sam_model"], "tiny");
      EXPECT_NEAR(f["properties"]["quality"].get<double>(), expected.iou[i].item<double>(), 1e-5);
      const cv::Mat want = nephroseg::io::tensor_to_mat(expected.masks[i]);
      const cv::Mat got = rasterise(f["geometry"], rgb.size());
      const int area = cv::countNonZero(want);
      informative += area > 0 && area < want.rows * want.cols;
      EXPECT_GE(iou(got, want), 0.99) << "mask " << i << ": " << cv::countNonZero(got) << " px returned, "
                                      << cv::countNonZero(want) << " px from the library";
    }
  }
  ASSERT_GE(informative, 2) << "the tiny model gave only empty or full masks: the comparison proves little";
  // One encoder pass for both prompts: the second request hit the cache.
  EXPECT_EQ(r.server->cache_misses(), 1);
  EXPECT_EQ(r.server->cache_hits(), requests - 1);
  // Another image is a miss.
  auto res = post_json(*r.client, "/sam/", {{"type", "vit_b"}, {"b64img", b64png(test_image(7))}, {"bbox", {1, 1, 20, 20}}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(r.server->cache_misses(), 2);
}

TEST_F(ServeTest, BadRequestsGetOurErrors) {
  options_.max_body_mb = 0.05;  // 51 KiB
  options_.max_image_mp = 1.0;
  auto r = start(options_);
  auto expect = [&](const httplib::Result& res, int status, const std::string& words) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    EXPECT_NE(detail_of(res).find(words), std::string::npos) << "detail: " << detail_of(res);
    EXPECT_NE(res->get_header_value("Content-Type").find("application/json"), std::string::npos);
  };
  const std::string img = b64png(test_image());
  expect(r.client->Post("/sam/", "{\"type\": ", "application/json"), 400, "not valid JSON");
  expect(post_json(*r.client, "/sam/", {{"type", "vit_b"}, {"b64img", "%%%%"}, {"bbox", {1, 1, 5, 5}}}), 400, "not base64");
  expect(post_json(*r.client, "/sam/", {{"type", "vit_b"}, {"b64img", nephroseg::io::base64_encode("just some text")},
                                        {"bbox", {1, 1, 5, 5}}}),
         400, "not a PNG or JPEG");
  expect(post_json(*r.client, "/sam/", {{"type", "vit_b"}, {"b64img", img}}), 400, "no prompt");
  expect(post_json(*r.client, "/sam/", {{"type", "vit_b"}, {"b64img", img}, {"point_coords", {{1, 2}}}}), 400,
         "point_labels");
  expect(post_json(*r.client, "/sam/", {{"type", "vit_b"}, {"b64img", img}, {"bbox", {1, 2}}}), 400, "bbox");
  expect(post_json(*r.client, "/sam/", {{"type", "vit_x"}, {"b64img", img}, {"bbox", {1, 1, 5, 5}}}), 400, "unknown type");
  expect(r.client->Get("/sam/nothing/"), 404, "no route");
  expect(r.client->Get("/other"), 404, "no route");
  expect(post_json(*r.client, "/sam/", {{"type", "vit_b"}, {"b64img", img}, {"bbox", {1, 1, 5, 5}},
                                        {"checkpoint_url", "nephroseg:nope"}}),
         404, "no model nephroseg:nope");
  expect(post_json(*r.client, "/sam/", {{"type", "vit_l"}, {"b64img", img}, {"bbox", {1, 1, 5, 5}}}), 404,
         "no model of type vit_l");
  // 413: a body over max_body_mb (refused from Content-Length), and a small PNG whose
  // header claims 100000 x 100000 pixels (refused before decoding).
  expect(r.client->Post("/sam/", std::string(200 * 1024, ' '), "application/json"), 413, "larger than");
  std::string huge = nephroseg::io::encode_png(test_image()).substr(0, 33);
  for (int at : {16, 20}) {
    huge[at] = 0;
    huge[at + 1] = 1;
    huge[at + 2] = char(0x86);
    huge[at + 3] = char(0xA0);  // 100000
  }
  expect(post_json(*r.client, "/sam/", {{"type", "vit_b"}, {"b64img", nephroseg::io::base64_encode(huge)},
                                        {"bbox", {1, 1, 5, 5}}}),
         413, "100000 x 100000");
  // 501: SAM 2 / SAM 3 / video (automask is served: AutomaskEqualsTheReferenceGenerator).
  expect(post_json(*r.client, "/sam/", {{"type", "sam2_t"}, {"b64img", img}, {"bbox", {1, 1, 5, 5}}}), 501, "vit_b");
  expect(post_json(*r.client, "/sam/sam3/", {{"type", "sam3"}}), 501, "not supported");
  expect(post_json(*r.client, "/sam/video/", json::object()), 501, "not supported");
  expect(post_json(*r.client, "/sam/automask/", {{"type", "sam2_s"}, {"b64img", img}}), 501, "not supported");
  // Still serving.
  auto res = post_json(*r.client, "/sam/", {{"type", "vit_b"}, {"b64img", img}, {"bbox", {1, 1, 50, 50}}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(ServeTest, FullQueueAnswers503) {
  std::mutex m;
  std::condition_variable cv;
  bool held = false, release = false;
  options_.queue_depth = 0;
  options_.on_model_held = [&](const std::string&) {
    std::unique_lock<std::mutex> lock(m);
    held = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  };
  auto r = start(options_);
  const json body = {{"type", "vit_b"}, {"b64img", b64png(test_image())}, {"bbox", {26, 20, 75, 70}}};
  auto first = std::async(std::launch::async, [&] {
    httplib::Client c("127.0.0.1", r.server->port());
    c.set_read_timeout(60, 0);
    auto res = post_json(c, "/sam/", body);
    return res ? res->status : -1;
  });
  {
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return held; }));
  }
  auto second = post_json(*r.client, "/sam/", body);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 503) << second->body;
  EXPECT_NE(detail_of(second).find("busy"), std::string::npos);
  {
    std::lock_guard<std::mutex> lock(m);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(first.get(), 200);
}

TEST_F(ServeTest, TokenRules) {
  ServeOptions open = options_;
  open.host = "0.0.0.0";
  EXPECT_NE(nephroseg::test::error_of([&] { Server s(open); }).find("--token"), std::string::npos);

  options_.token = "s3cret";
  auto r = start(options_);
  auto res = r.client->Get("/sam/version/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_NE(detail_of(res).find("token"), std::string::npos);
  res = r.client->Get("/sam/version/", {{"Authorization", "Bearer wrong"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  res = r.client->Get("/sam/version/", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = r.client->Get("/s3cret/sam/version/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "0.1.0");
  res = post_json(*r.client, "/s3cret/sam/", {{"type", "vit_b"}, {"b64img", b64png(test_image())}, {"bbox", {2, 2, 60, 60}}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  res = r.client->Get("/s3cre/sam/version/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
}

// 20 clients for 30 s: no failed request, and memory flat once warm (RSS after the
// first 5 s against the end: the embedding cache holds two views, nothing else grows).
TEST_F(ServeTest, TwentyConcurrentClientsFor30SecondsWithFlatMemory) {
  options_.queue_depth = 64;
  auto r = start(options_);
  std::vector<std::string> images = {b64png(test_image()), b64png(test_image(3))};
  std::atomic<int> ok{0}, bad{0};
  std::mutex failures_mutex;
  std::string failures;
  const auto start_time = std::chrono::steady_clock::now();
  const auto until = start_time + std::chrono::seconds(30);
  std::vector<std::thread> threads;
  for (int t = 0; t < 20; ++t)
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", r.server->port());
      c.set_read_timeout(120, 0);
      c.set_write_timeout(120, 0);
      for (int i = 0; std::chrono::steady_clock::now() < until; ++i) {
        httplib::Result res = (t + i) % 3 == 0
                                  ? c.Get("/sam/version/")
                                  : post_json(c, "/sam/", {{"type", "vit_b"}, {"b64img", images[(t + i) % 2]},
                                                           {"bbox", {5 + t, 5, 60 + t, 70}}});
        if (res && res->status == 200) {
          ++ok;
          continue;
        }
        ++bad;
        std::lock_guard<std::mutex> lock(failures_mutex);
        failures += res ? "status " + std::to_string(res->status) + ": " + detail_of(res) + "\n"
                        : "no answer: " + httplib::to_string(res.error()) + "\n";
      }
    });
  std::this_thread::sleep_for(std::chrono::seconds(5));
  const double warm_mib = nephroseg::test::resident_mib();
  for (auto& th : threads) th.join();
  const double end_mib = nephroseg::test::resident_mib();
  EXPECT_EQ(bad.load(), 0) << failures;
  EXPECT_GE(ok.load(), 100);
  EXPECT_EQ(r.server->cache_misses(), 2);
  EXPECT_LT(end_mib - warm_mib, 64.0) << "RSS " << warm_mib << " MiB after 5 s, " << end_mib << " MiB at 30 s ("
                                      << ok.load() << " requests)";
}

TEST_F(ServeTest, StopDuringARequestFinishesIt) {
  std::atomic<bool> held{false};
  options_.on_model_held = [&](const std::string&) {
    held = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
  };
  auto r = start(options_);
  auto pending = std::async(std::launch::async, [&] {
    httplib::Client c("127.0.0.1", r.server->port());
    c.set_read_timeout(60, 0);
    auto res = post_json(c, "/sam/", {{"type", "vit_b"}, {"b64img", b64png(test_image())}, {"bbox", {26, 20, 75, 70}}});
    return res ? res->status : -1;
  });
  while (!held) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  r.server->stop();
  EXPECT_EQ(pending.get(), 200);
  r.server->stop();  // idempotent
  r.server->wait();  // returns at once after stop()
  httplib::Client late("127.0.0.1", r.server->port());
  late.set_connection_timeout(2, 0);
  EXPECT_FALSE(late.Get("/sam/version/"));
}

TEST_F(ServeTest, CliServesUntilSigterm) {
  if (!nephroseg::test::have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const std::string log = dir_ + "/serve.log";
  const std::string exe = nephroseg::test::binary_dir() + "/nephroseg";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    if (chdir(dir_.c_str()) != 0) _exit(126);  // the server's working folder: checked for leftovers
    execl(exe.c_str(), exe.c_str(), "serve", "--port", "0", "--weights", options_.weights_file.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = 0;
  const std::regex listening("serve: listening on http://127\\.0\\.0\\.1:([0-9]+)/");
  for (int i = 0; i < 300 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::smatch m;
    if (std::regex_search(text, m, listening)) port = std::stoi(m[1]);
  }
  ASSERT_GT(port, 0) << "no 'listening' line in " << log;
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get("/sam/weights/?type=vit_b");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("nephroseg:tiny"), std::string::npos);
  // SIGTERM while an automask request (the slowest route) is in flight: the request is
  // answered, the process exits 0, and nothing is left beside the models or in the
  // server's working folder.
  std::atomic<int> in_flight_status{-1};
  std::thread slow([&] {
    httplib::Client s("127.0.0.1", port);
    s.set_read_timeout(120, 0);
    auto a = post_json(s, "/sam/automask/", {{"type", "vit_b"}, {"b64img", b64png(test_image())},
                                             {"points_per_side", 16}, {"points_per_batch", 4}});
    in_flight_status = a ? a->status : 0;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  slow.join();
  EXPECT_EQ(in_flight_status.load(), 200) << "the request in flight when SIGTERM came was not answered";
  EXPECT_TRUE(nephroseg::test::temporaries_under(dir_).empty());
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("GET /sam/weights/ 200"), std::string::npos) << text;
}

TEST_F(ServeTest, ModelsFolderByOfficialNamesAndLoadFailures) {
  const std::string models = dir_ + "/official";
  fs::create_directories(models);
  // The tiny checkpoint under official names: registered by name, but it does not fit
  // the official configurations, so loading it fails with our words (and the server
  // goes on).
  fs::copy_file(nephroseg::test::shared_path(kCheckpoint), models + "/sam_vit_b_01ec64.pth");
  fs::copy_file(nephroseg::test::shared_path(kCheckpoint), models + "/medsam_vit_b.pth");
  std::ofstream(models + "/unrelated.pth") << "x";
  ServeOptions o;
  o.models_dir = models;
  auto r = start(o);
  auto res = r.client->Get("/sam/weights/");
  ASSERT_TRUE(res);
  EXPECT_EQ(json::parse(res->body), json::parse(R"([{"type":"vit_b","name":"sam_vit_b_01ec64","url":"nephroseg:sam_vit_b_01ec64"},
                                                   {"type":"vit_b","name":"medsam_vit_b","url":"nephroseg:medsam_vit_b"}])"));
  const json body = {{"type", "vit_b"}, {"b64img", b64png(test_image())}, {"bbox", {2, 2, 60, 60}},
                     {"checkpoint_url", "nephroseg:medsam_vit_b"}};
  res = post_json(*r.client, "/sam/", body);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 500);
  EXPECT_NE(detail_of(res).find("model medsam_vit_b could not be loaded"), std::string::npos) << detail_of(res);
  res = r.client->Get("/sam/version/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(ServeTest, WeightsFileErrorsNameTheEntry) {
  auto error_for = [&](const json& list) {
    const std::string path = dir_ + "/bad.json";
    std::ofstream(path) << list.dump();
    ServeOptions o;
    o.weights_file = path;
    return nephroseg::test::error_of([&] { Server s(o); });
  };
  json entry = json::parse(std::ifstream(options_.weights_file))[0];
  json extra = entry;
  extra["colour"] = "red";
  std::string e = error_for(json::array({extra}));
  EXPECT_NE(e.find("entry 0 (\"tiny\")"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key \"colour\""), std::string::npos) << e;
  json kind = entry;
  kind["kind"] = "unet";
  e = error_for(json::array({kind}));
  EXPECT_NE(e.find("unknown kind \"unet\""), std::string::npos) << e;
  json sam2 = entry;
  sam2["type"] = "sam2_t";
  e = error_for(json::array({sam2}));
  EXPECT_NE(e.find("type \"sam2_t\" is not served"), std::string::npos) << e;
  e = error_for(json::array({entry, entry}));
  EXPECT_NE(e.find("entry 1 (\"tiny\"): the name is used twice"), std::string::npos) << e;
}

// POST /sam/automask/ with samapi's fields gives what the generator samapi runs gives
// (ksugar's fork, golden "ks" cases of tests/golden/automask, made by the reference
// code): the same number of masks in the same order, each rasterised back from its
// GeoJSON within the golden README's tolerance, quality = the reference's predicted IoU.
TEST_F(ServeTest, AutomaskEqualsTheReferenceGenerator) {
  const std::string gdir = nephroseg::test::source_dir() + "/tests/golden/automask";
  const auto ref = nephroseg::test::load_ref_pt(gdir + "/automask.ref.pt");
  std::ifstream cases_file(gdir + "/cases.json");
  const json cases = json::parse(cases_file)["cases"];
  auto r = start(options_);
  int masks_checked = 0;
  for (const std::string name : {"synth_single", "synth_largest"}) {
    SCOPED_TRACE(name);
    json c;
    for (const auto& k : cases)
      if (k["name"] == name) c = k;
    ASSERT_FALSE(c.is_null()) << "no golden case " << name;
    ASSERT_EQ(c["generator"], "ks");
    const at::Tensor image = ref.at("image." + c["image"].get<std::string>()).contiguous();
    const cv::Mat rgb = nephroseg::io::tensor_to_mat(image).clone();
    json body = c["options"];
    body["type"] = "vit_b";
    body["b64img"] = b64png(rgb);
    auto res = post_json(*r.client, "/sam/automask/", body);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json features = json::parse(res->body);
    const at::Tensor masks = nephroseg::test::unpack_bits(ref.at(name + ".masks_packed"), rgb.rows, rgb.cols);
    const at::Tensor quality = ref.at(name + ".predicted_iou").to(at::kDouble);
    ASSERT_EQ(features.size(), static_cast<size_t>(masks.size(0)));
    for (size_t i = 0; i < features.size(); ++i) {
      const json& f = features[i];
      EXPECT_EQ(f["properties"]["object_idx"], static_cast<int>(i) - 1);
      EXPECT_NEAR(f["properties"]["quality"].get<double>(), quality[static_cast<int64_t>(i)].item<double>(), 1e-5);
      const cv::Mat want = nephroseg::io::tensor_to_mat(masks[static_cast<int64_t>(i)]);
      const cv::Mat got = rasterise(f["geometry"], rgb.size());
      EXPECT_LE(cv::countNonZero(got != want), 2) << "mask " << i;
      ++masks_checked;
    }
  }
  EXPECT_GE(masks_checked, 10) << "too few masks to prove anything";
}

TEST_F(ServeTest, AutomaskBadFieldsAndSizes) {
  options_.max_automask_mp = 0.005;  // 5,000 pixels: the 128 x 96 test image is over
  auto r = start(options_);
  const std::string img = b64png(test_image());
  struct Bad {
    json fields;
    int status;
    std::string detail;
  };
  const std::vector<Bad> bad = {
      {{{"points_per_side", 1e12}}, 400, "field \"points_per_side\" must be a whole number"},
      {{{"points_per_side", 0}}, 400, "points_per_side must lie in [1, 256]"},
      {{{"points_per_batch", 2.5}}, 400, "field \"points_per_batch\" must be a whole number"},
      {{{"pred_iou_thresh", "high"}}, 400, "field \"pred_iou_thresh\" must be a number"},
      {{{"box_nms_thresh", 3}}, 400, "box_nms_thresh must lie in [0, 1]"},
      {{{"output_type", "Every mask"}}, 400, "Every mask"},
      {{{"include_image_edge", 1}}, 400, "field \"include_image_edge\" must be true or false"},
      {json::object(), 413, "over this server's automask limit"},
  };
  for (const Bad& b : bad) {
    json body = b.fields;
    body["type"] = "vit_b";
    body["b64img"] = img;
    auto res = post_json(*r.client, "/sam/automask/", body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, b.status) << body.dump().substr(0, 200);
    EXPECT_NE(detail_of(res).find(b.detail), std::string::npos) << detail_of(res);
  }
  // Still serving.
  auto version = r.client->Get("/sam/version/");
  ASSERT_TRUE(version);
  EXPECT_EQ(version->status, 200);
}

// ---------------------------------------------------------------------------
// GlomSAM and GBMSeg entries: the server against the libraries called directly.
// ---------------------------------------------------------------------------

namespace {

const char* kGlomSam = "golden/glomsam/full_model.pth";
const char* kDino = "golden/models/dinov2_tiny.pth";
const char* kDinoCfg = "golden/models/dinov2_tiny.json";
const char* kRefImage = "data/gbmseg_sample/reference_image/001_264193_2.png";
const char* kRefMask = "data/gbmseg_sample/reference_mask/001_264193_2.png";
const char* kTarget = "data/gbmseg_sample/target_image/001_250744_2.png";

std::string write_weights(const std::string& dir, const json& entries) {
  const std::string path = dir + "/models.json";
  std::ofstream(path) << entries.dump(2);
  return path;
}

json glomsam_entry(double threshold = 0.5) {
  return {{"name", "glom"}, {"kind", "glomsam"}, {"checkpoint", nephroseg::test::shared_path(kGlomSam)},
          {"config", "tiny"}, {"threshold", threshold}, {"precision", "fp32"}};
}

json gbmseg_entry() {
  using nephroseg::test::shared_path;
  return {{"name", "gbm"},
          {"kind", "gbmseg"},
          {"dinov2", {{"checkpoint", shared_path(kDino)}, {"model_config", shared_path(kDinoCfg)}}},
          {"sam", {{"checkpoint", shared_path(kCheckpoint)}, {"model_config", shared_path(kConfig)}}},
          {"reference_images", {shared_path(kRefImage)}},
          {"reference_masks", {shared_path(kRefMask)}},
          {"precision", "fp32"}};
}

/// The tiny golden GlomSAM as `glomsam predict --config tiny` loads it.
std::shared_ptr<nephroseg::glomsam::GlomSamModel> tiny_glomsam(double threshold = 0.5) {
  nephroseg::glomsam::GlomSamConfig config = nephroseg::glomsam::GlomSamConfig::tiny();
  config.mask_threshold = threshold;
  return nephroseg::glomsam::GlomSamModel::load(nephroseg::test::shared_path(kGlomSam), config,
                                                nephroseg::Precision::kFp32);
}

cv::Mat glomsam_mask(const nephroseg::glomsam::GlomSamModel& model, const cv::Mat& rgb,
                     const nephroseg::glomsam::Box& box) {
  nephroseg::glomsam::PredictOptions po;
  po.box = box;
  return nephroseg::io::tensor_to_mat(model.predict(rgb, po).mask) * 255;
}

/// A picture with three bright disks (glomerulus-like blobs) on a textured background.
cv::Mat blobs_image() {
  cv::Mat rgb(120, 150, CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y)
    for (int x = 0; x < rgb.cols; ++x)
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(uchar((x * 7 + y * 3) % 60 + 40), uchar((x * y) % 50 + 30), 70);
  cv::circle(rgb, {35, 40}, 22, cv::Scalar(240, 200, 210), cv::FILLED);
  cv::circle(rgb, {110, 45}, 18, cv::Scalar(230, 190, 220), cv::FILLED);
  cv::circle(rgb, {70, 95}, 16, cv::Scalar(250, 210, 200), cv::FILLED);
  return rgb;
}

}  // namespace

TEST(GlomSamRoughBoxes, ComponentBoxesOfAHandMadeMask) {
  cv::Mat mask = cv::Mat::zeros(40, 50, CV_8U);
  mask(cv::Rect(5, 5, 5, 10)).setTo(1);    // x 5..9, y 5..14: area 50
  mask(cv::Rect(25, 2, 3, 3)).setTo(1);    // area 9 < 16: no box
  mask(cv::Rect(40, 30, 10, 10)).setTo(1); // touches the right and bottom edges
  auto boxes = nephroseg::glomsam::component_boxes(mask);
  ASSERT_EQ(boxes.size(), 2u);
  EXPECT_EQ(boxes[0], (nephroseg::glomsam::Box{0, 0, 19, 24}));
  EXPECT_EQ(boxes[1], (nephroseg::glomsam::Box{30, 20, 50, 40}));
  boxes = nephroseg::glomsam::component_boxes(mask, 2.f, 9);
  ASSERT_EQ(boxes.size(), 3u);
  EXPECT_EQ(boxes[0], (nephroseg::glomsam::Box{23, 0, 29, 6}));  // raster order of the first pixel
  EXPECT_EQ(boxes[1], (nephroseg::glomsam::Box{3, 3, 11, 16}));
  EXPECT_TRUE(nephroseg::glomsam::component_boxes(cv::Mat::zeros(8, 8, CV_8U)).empty());
}

TEST_F(ServeTest, GlomSamBoxGivesTheLibrarysMaskAndPointsAre400) {
  NEPHRO_REQUIRE_SHARED(kGlomSam);
  // The random tiny model's logits stay below 0.5: the threshold is their median inside
  // the first box (read from the library), so the masks compared have both classes.
  const cv::Mat rgb = test_image();
  nephroseg::glomsam::PredictOptions probe;
  probe.box = nephroseg::glomsam::Box{20, 15, 80, 75};
  const at::Tensor logits = tiny_glomsam()->predict(rgb, probe).logits.slice(0, 15, 75).slice(1, 20, 80);
  const double threshold = logits.flatten().median().item<double>();
  ServeOptions o;
  o.weights_file = write_weights(dir_, json::array({glomsam_entry(threshold)}));
  auto r = start(o);
  const auto model = tiny_glomsam(threshold);
  for (const auto& box : {nephroseg::glomsam::Box{20, 15, 80, 75}, nephroseg::glomsam::Box{85, 50, 120, 90}}) {
    const json body = {{"type", "vit_b"}, {"checkpoint_url", "nephroseg:glom"}, {"b64img", b64png(rgb)},
                       {"bbox", {int(box[0]), int(box[1]), int(box[2]), int(box[3])}}};
    auto res = post_json(*r.client, "/sam/", body);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json features = json::parse(res->body);
    ASSERT_EQ(features.size(), 1u);
    EXPECT_TRUE(features[0]["properties"]["quality"].is_null());
    EXPECT_EQ(features[0]["properties"]["sam_model"], "glom");
    const cv::Mat expected = glomsam_mask(*model, rgb, box);
    EXPECT_GT(cv::countNonZero(expected), 0) << "the library's mask is empty: the comparison would say nothing";
    EXPECT_GE(iou(rasterise(features[0]["geometry"], rgb.size()), expected), 0.99);
  }
  json points = {{"type", "vit_b"}, {"checkpoint_url", "nephroseg:glom"}, {"b64img", b64png(rgb)},
                 {"point_coords", {{50, 45}}}, {"point_labels", {1}}};
  auto res = post_json(*r.client, "/sam/", points);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(detail_of(res).find("model glom is GlomSAM: it takes a box"), std::string::npos) << detail_of(res);
  EXPECT_NE(detail_of(res).find("points alone"), std::string::npos) << detail_of(res);
}

// automask/: one GlomSAM call per component box of the rough mask, as the library's
// rough_mask + component_boxes + predict give them.
TEST_F(ServeTest, GlomSamAutomaskIsOneFeaturePerRoughMaskComponent) {
  NEPHRO_REQUIRE_SHARED(kGlomSam);
  // The random tiny UNet's logits are negative everywhere (no component on any picture):
  // its final bias is raised so that the top 10 % of this picture's logits are positive,
  // and the server serves that checkpoint.
  const cv::Mat rgb = blobs_image();
  const std::string checkpoint = dir_ + "/glomsam_rough_on.pth";
  {
    auto tuned = tiny_glomsam();
    auto& net = nephroseg::glomsam::internal::module(*tuned);
    at::Tensor tile = at::zeros({1, 3, 160, 160});
    tile[0].narrow(1, 0, rgb.rows).narrow(2, 0, rgb.cols).copy_(
        nephroseg::io::mat_to_tensor(rgb).permute({2, 0, 1}).to(at::kFloat) / 255.0f);
    at::Tensor unet_logits;
    {
      at::NoGradGuard no_grad;
      net.rough_mask(tile, nullptr, &unet_logits);
      const at::Tensor inside = unet_logits[0][0].slice(0, 0, rgb.rows / 2).slice(1, 0, rgb.cols / 2).flatten();
      net.RoughMaskGenerator->final_conv->bias.sub_(at::quantile(inside, 0.9));
    }
    tuned->save(checkpoint);
  }
  // Masks with both classes: the threshold is the median logit inside the first box.
  double threshold = 0.5;
  {
    auto tuned = nephroseg::glomsam::GlomSamModel::load(checkpoint, nephroseg::glomsam::GlomSamConfig::tiny());
    const auto first = nephroseg::glomsam::component_boxes(nephroseg::glomsam::rough_mask(*tuned, rgb));
    ASSERT_FALSE(first.empty());
    nephroseg::glomsam::PredictOptions po;
    po.box = first[0];
    threshold = tuned->predict(rgb, po).logits.slice(0, int(first[0][1]), int(first[0][3]))
                    .slice(1, int(first[0][0]), int(first[0][2])).flatten().median().item<double>();
  }
  json entry = glomsam_entry(threshold);
  entry["checkpoint"] = checkpoint;
  ServeOptions o;
  o.weights_file = write_weights(dir_, json::array({entry}));
  auto r = start(o);
  nephroseg::glomsam::GlomSamConfig config = nephroseg::glomsam::GlomSamConfig::tiny();
  config.mask_threshold = threshold;
  const auto model = nephroseg::glomsam::GlomSamModel::load(checkpoint, config, nephroseg::Precision::kFp32);
  const cv::Mat rough = nephroseg::glomsam::rough_mask(*model, rgb);
  const auto boxes = nephroseg::glomsam::component_boxes(rough);
  ASSERT_FALSE(boxes.empty()) << "no rough-mask component (" << cv::countNonZero(rough) << " px)";
  std::vector<cv::Mat> expected;
  for (const auto& box : boxes) {
    cv::Mat m = glomsam_mask(*model, rgb, box);
    if (cv::countNonZero(m) > 0) expected.push_back(m);
  }
  const json body = {{"type", "vit_b"}, {"checkpoint_url", "nephroseg:glom"}, {"b64img", b64png(rgb)}};
  auto res = post_json(*r.client, "/sam/automask/", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json features = json::parse(res->body);
  ASSERT_FALSE(expected.empty()) << "every per-box mask is empty: the comparison would say nothing";
  ASSERT_EQ(features.size(), expected.size()) << boxes.size() << " box(es)";
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(features[i]["properties"]["object_idx"], int64_t(i) - 1);
    EXPECT_GE(iou(rasterise(features[i]["geometry"], rgb.size()), expected[i]), 0.99) << "feature " << i;
  }
}

TEST_F(ServeTest, GbmSegGivesTheLibrarysMaskAndKeepsTheReference) {
  NEPHRO_REQUIRE_SHARED(kDino);
  NEPHRO_REQUIRE_SHARED(kDinoCfg);
  NEPHRO_REQUIRE_SHARED(kRefImage);
  NEPHRO_REQUIRE_SHARED(kRefMask);
  NEPHRO_REQUIRE_SHARED(kTarget);
  using nephroseg::test::shared_path;
  ServeOptions o;
  o.weights_file = write_weights(dir_, json::array({gbmseg_entry()}));
  auto r = start(o);
  // A 200 x 160 region of the target (the rasteriser is per pixel).
  cv::Mat target;
  cv::resize(nephroseg::io::read_image_rgb(shared_path(kTarget)), target, {200, 160}, 0, 0, cv::INTER_AREA);

  namespace gb = nephroseg::gbmseg;
  gb::BackendSpec dino{"dinov2", shared_path(kDino), "", shared_path(kDinoCfg), false, 0};
  gb::BackendSpec sam{"sam", shared_path(kCheckpoint), "", shared_path(kConfig), false, 0};
  gb::GbmSegPipeline pipe(gb::make_feature_extractor(dino), gb::make_point_segmenter(sam),
                          gb::PromptOptions::authors_code());
  pipe.set_reference(nephroseg::io::read_image_rgb(shared_path(kRefImage)),
                     nephroseg::io::read_image_raw(shared_path(kRefMask)));
  const cv::Mat expected = pipe.segment(target).mask;
  ASSERT_GT(cv::countNonZero(expected), 0) << "the library's mask is empty: the comparison would say nothing";

  EXPECT_EQ(r.server->reference_computations(), 0) << "nothing is loaded before the first request";
  for (const char* route : {"/sam/", "/sam/automask/"}) {
    const json body = {{"type", "vit_b"}, {"checkpoint_url", "nephroseg:gbm"}, {"b64img", b64png(target)},
                       {"bbox", {1, 1, 50, 50}}};
    auto res = post_json(*r.client, route, body);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << route << ": " << res->body;
    const json features = json::parse(res->body);
    ASSERT_FALSE(features.empty());
    cv::Mat got = cv::Mat::zeros(target.size(), CV_8U);
    for (size_t i = 0; i < features.size(); ++i) {
      EXPECT_EQ(features[i]["properties"]["object_idx"], int64_t(i) - 1);
      EXPECT_TRUE(features[i]["properties"]["quality"].is_null());
      got |= rasterise(features[i]["geometry"], target.size());
    }
    EXPECT_GE(iou(got, expected), 0.99) << route;
    EXPECT_EQ(r.server->reference_computations(), 1) << route << ": the reference features are computed once";
  }
}

TEST_F(ServeTest, GlomSamAndGbmSegWeightsErrorsNameEntryAndField) {
  auto error_for = [&](const json& entry) {
    ServeOptions o;
    o.weights_file = write_weights(dir_, json::array({entry}));
    return nephroseg::test::error_of([&] { Server s(o); });
  };
  json gbm = gbmseg_entry();
  gbm.erase("reference_masks");
  std::string e = error_for(gbm);
  EXPECT_NE(e.find("entry 0 (\"gbm\"): \"reference_masks\" is required"), std::string::npos) << e;
  gbm = gbmseg_entry();
  gbm["reference_masks"] = json::array({dir_ + "/absent.png"});
  e = error_for(gbm);
  EXPECT_NE(e.find("(\"gbm\"): \"reference_masks\"[0]: no such file"), std::string::npos) << e;
  gbm = gbmseg_entry();
  gbm["reference_images"].push_back(nephroseg::test::shared_path(kRefImage));
  e = error_for(gbm);
  EXPECT_NE(e.find("\"reference_masks\" lists 1 file(s) for 2 reference image(s)"), std::string::npos) << e;
  gbm = gbmseg_entry();
  gbm["preset"] = "fancy";
  e = error_for(gbm);
  EXPECT_NE(e.find("(\"gbm\"): \"preset\": unknown"), std::string::npos) << e;
  EXPECT_NE(e.find("'fancy'"), std::string::npos) << e;
  gbm = gbmseg_entry();
  gbm["sam"].erase("checkpoint");
  e = error_for(gbm);
  EXPECT_NE(e.find("(\"gbm\"): \"sam\": \"checkpoint\" is required"), std::string::npos) << e;
  gbm = gbmseg_entry();
  gbm["checkpoint"] = "x.pth";
  e = error_for(gbm);
  EXPECT_NE(e.find("unknown key \"checkpoint\" for kind gbmseg"), std::string::npos) << e;
  json glom = glomsam_entry();
  glom["config"] = "huge";
  e = error_for(glom);
  EXPECT_NE(e.find("(\"glom\"): \"config\" huge is neither"), std::string::npos) << e;
  glom = glomsam_entry();
  glom.erase("checkpoint");
  e = error_for(glom);
  EXPECT_NE(e.find("(\"glom\"): \"checkpoint\" is required"), std::string::npos) << e;
}

// The same prompts through the server and through `nephroseg sam` (the CLI a user
// would otherwise run on the exported view): every mask the CLI writes, rasterised
// back from the server's GeoJSON, within IoU 0.99.
TEST_F(ServeTest, PromptsGiveTheMasksOfTheSamCli) {
  if (!nephroseg::test::have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const cv::Mat rgb = test_image();
  const std::string image = dir_ + "/view.png";
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imwrite(image, bgr));
  auto r = start(options_);
  struct Case {
    std::string cli;
    json fields;
  };
  const std::vector<Case> cases = {
      {"--box 26,20,75,70", {{"bbox", {26, 20, 75, 70}}}},
      {"--point 50,45,1 --point 100,70,0 --multimask",
       {{"point_coords", {{50, 45}, {100, 70}}}, {"point_labels", {1, 0}}, {"multimask_output", true}}},
  };
  int compared = 0;
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string out = dir_ + "/cli" + std::to_string(k);
    const auto run = nephroseg::test::run_cli("sam --checkpoint " + nephroseg::test::shared_path(kCheckpoint) +
                                              " --model-config " + nephroseg::test::shared_path(kConfig) +
                                              " --image " + image + " " + cases[k].cli + " --out " + out);
    ASSERT_EQ(run.code, 0) << run.output;
    json body = cases[k].fields;
    body["type"] = "vit_b";
    body["b64img"] = b64png(rgb);
    auto res = post_json(*r.client, "/sam/", body);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json features = json::parse(res->body);
    for (size_t i = 0; i < features.size(); ++i) {
      const cv::Mat want = cv::imread(out + "/masks/mask_" + std::to_string(i) + ".png", cv::IMREAD_GRAYSCALE);
      ASSERT_FALSE(want.empty()) << "the CLI wrote no masks/mask_" << i << ".png in " << out;
      const cv::Mat got = rasterise(features[i]["geometry"], rgb.size());
      EXPECT_GE(iou(got, want > 0), 0.99) << "case " << k << ", mask " << i;
      compared += cv::countNonZero(want) > 0;
    }
  }
  EXPECT_GE(compared, 2) << "the CLI's masks were empty: the comparison proves little";
}

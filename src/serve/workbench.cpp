// The workbench's routing, path rules, decoded images, tiles and the file routes
// (serve/workbench.h).
#include "serve/workbench.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "nephroseg/core/error.h"
#include "nephroseg/io/calibration.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/measure/reference.h"
#include "serve/request.h"
#include "serve/web_assets.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace nephroseg::serve {

#ifndef NEPHROSEG_VERSION_TEXT
#define NEPHROSEG_VERSION_TEXT "0.1.0"
#endif

constexpr int kTile = 256;

// ---- answers -----------------------------------------------------------------------

void reply_json(httplib::Response& res, const json& body, int status) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void reply_bytes(httplib::Response& res, std::string bytes, const std::string& content_type) {
  res.status = 200;
  res.set_header("Cache-Control", "no-store");
  res.body = std::move(bytes);
  res.set_header("Content-Type", content_type);
}

json body_object(const httplib::Request& req) {
  json body = parse_body(req.body);
  if (!body.is_object()) fail(400, "the request body must be a JSON object");
  return body;
}

std::string required_string(const json& body, const char* key) {
  const json* f = field(body, key);
  if (!f) fail(400, std::string("field \"") + key + "\" is required");
  if (!f->is_string()) fail(400, std::string("field \"") + key + "\" must be a string");
  return f->get<std::string>();
}

double required_number(const json& body, const char* key) {
  const json* f = field(body, key);
  if (!f) fail(400, std::string("field \"") + key + "\" is required");
  if (!f->is_number()) fail(400, std::string("field \"") + key + "\" must be a number");
  const double v = f->get<double>();
  if (!std::isfinite(v)) fail(400, std::string("field \"") + key + "\" must be finite");
  return v;
}

std::string query(const httplib::Request& req, const char* key) {
  if (!req.has_param(key)) fail(400, std::string("query parameter \"") + key + "\" is required");
  return req.get_param_value(key);
}

long long query_int(const httplib::Request& req, const char* key, long long lo, long long hi) {
  const std::string text = query(req, key);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    fail(400, std::string("query parameter \"") + key + "\" must be an integer in " + std::to_string(lo) +
                  ".." + std::to_string(hi) + " (got \"" + text.substr(0, 40) + "\")");
  return v;
}

// ---- paths -------------------------------------------------------------------------

Roots::Roots(const std::vector<std::string>& dirs) {
  for (const std::string& d : dirs) {
    std::error_code ec;
    const fs::path real = fs::canonical(d, ec);
    NEPHRO_CHECK(!ec && fs::is_directory(real), "serve: --root ", d, ": not a folder");
    std::string base = real.filename().string();
    if (base.empty()) base = "root";
    std::string name = base;
    for (int k = 2;; ++k) {
      bool taken = false;
      for (const Root& r : roots_) taken = taken || r.name == name;
      if (!taken) break;
      name = base + "-" + std::to_string(k);
    }
    roots_.push_back({name, real});
  }
}

fs::path Roots::resolve(const std::string& virtual_path, bool must_exist) const {
  if (roots_.empty()) fail(403, "this server shows no folders: start it with --root DIR");
  if (virtual_path.empty()) fail(400, "the path is empty");
  if (virtual_path.size() > 4096) fail(400, "the path is longer than 4096 bytes");
  if (virtual_path.front() == '/' || virtual_path.find('\\') != std::string::npos ||
      virtual_path.find('\0') != std::string::npos)
    fail(403, "'" + virtual_path + "' is not a path inside the served folders (absolute paths are refused)");
  const size_t slash = virtual_path.find('/');
  const std::string name = virtual_path.substr(0, slash);
  std::string rel = slash == std::string::npos ? "" : virtual_path.substr(slash + 1);
  // "data//x" and "data/x/" name data/x (a leading '/' in rel would make root / rel absolute).
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  const Root* root = nullptr;
  for (const Root& r : roots_)
    if (r.name == name) root = &r;
  if (!root) fail(403, "'" + name + "' is not a served folder (GET /api/roots lists them)");
  for (const auto& part : fs::path(rel))
    if (part == "..") fail(403, "'" + virtual_path + "': '..' is refused");
  std::error_code ec;
  const fs::path joined = rel.empty() ? root->real : root->real / rel;
  const fs::path real = fs::weakly_canonical(joined, ec);
  if (ec) fail(404, "'" + virtual_path + "' cannot be resolved");
  const fs::path inside = real.lexically_relative(root->real);
  if (inside.empty() || *inside.begin() == "..")
    fail(403, "'" + virtual_path + "' leads outside the served folder " + root->name + " (a link out of it?)");
  if (must_exist && !fs::exists(real)) fail(404, "'" + virtual_path + "': no such file or folder");
  return real;
}

std::string Roots::virtual_of(const fs::path& real) const {
  for (const Root& r : roots_) {
    const fs::path inside = real.lexically_relative(r.real);
    if (inside.empty() || *inside.begin() == "..") continue;
    return inside == "." ? r.name : r.name + "/" + inside.generic_string();
  }
  return "";
}

json Roots::list() const {
  json out = json::array();
  for (const Root& r : roots_) out.push_back({{"name", r.name}, {"path", r.name}});
  return out;
}

// ---- decoded images ----------------------------------------------------------------

std::string ImageCache::key_of(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  const auto time = fs::last_write_time(file, ec).time_since_epoch().count();
  return file.string() + "|" + std::to_string(size) + "|" + std::to_string(time);
}

std::shared_ptr<const cv::Mat> ImageCache::get(const std::string& key, const std::function<cv::Mat()>& load) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return it->second->second;
    }
  }
  auto value = std::make_shared<const cv::Mat>(load());
  const size_t size = value->total() * value->elemSize();
  std::lock_guard<std::mutex> lock(mutex_);
  if (size > limit_ || index_.count(key)) return value;
  order_.emplace_front(key, value);
  index_[key] = order_.begin();
  bytes_ += size;
  while (bytes_ > limit_ && order_.size() > 1) {
    const auto& last = order_.back();
    bytes_ -= last.second->total() * last.second->elemSize();
    index_.erase(last.first);
    order_.pop_back();
  }
  return value;
}

std::shared_ptr<const cv::Mat> ImageCache::rgb(const fs::path& file) {
  return get("rgb|" + key_of(file), [&] {
    try {
      return io::read_image_rgb(file.string());
    } catch (const Error& e) {
      fail(400, e.what());
    }
  });
}

std::shared_ptr<const cv::Mat> ImageCache::mask(const fs::path& file) {
  return get("mask|" + key_of(file), [&] {
    try {
      cv::Mat m = io::read_mask(file.string());
      return cv::Mat(m != 0);
    } catch (const Error& e) {
      fail(400, e.what());
    }
  });
}

int max_zoom(int width, int height) {
  int z = 0;
  while ((static_cast<long long>(kTile) << z) < std::max(width, height)) ++z;
  return z;
}

namespace {

/// The image region tile (z, x, y) covers and the tile's size in it; 404 past the pyramid.
cv::Rect tile_region(const cv::Mat& image, int z, int x, int y, int* scale) {
  const int top = max_zoom(image.cols, image.rows);
  if (z < 0 || z > top) fail(404, "zoom " + std::to_string(z) + " is not in 0.." + std::to_string(top));
  *scale = 1 << (top - z);
  const long long side = static_cast<long long>(kTile) * *scale;
  const long long x0 = x * side, y0 = y * side;
  if (x < 0 || y < 0 || x0 >= image.cols || y0 >= image.rows) fail(404, "no such tile");
  const long long x1 = std::min<long long>(image.cols, x0 + side), y1 = std::min<long long>(image.rows, y0 + side);
  return cv::Rect(static_cast<int>(x0), static_cast<int>(y0), static_cast<int>(x1 - x0), static_cast<int>(y1 - y0));
}

cv::Mat scaled(const cv::Mat& region, int scale, int interpolation) {
  if (scale == 1) return region;
  cv::Mat out;
  const int w = std::max(1, (region.cols + scale - 1) / scale), h = std::max(1, (region.rows + scale - 1) / scale);
  cv::resize(region, out, cv::Size(w, h), 0, 0, interpolation);
  return out;
}

}  // namespace

cv::Mat image_tile(const cv::Mat& image, int z, int x, int y) {
  int scale = 1;
  const cv::Rect r = tile_region(image, z, x, y, &scale);
  const cv::Mat part = scaled(image(r), scale, cv::INTER_AREA);
  cv::Mat tile(kTile, kTile, image.type(), cv::Scalar::all(0));
  part.copyTo(tile(cv::Rect(0, 0, part.cols, part.rows)));
  return tile;
}

cv::Mat mask_tile(const cv::Mat& mask, int z, int x, int y) {
  int scale = 1;
  const cv::Rect r = tile_region(mask, z, x, y, &scale);
  // The region grown by one tile pixel on each side (where the image has one), so that
  // the outline at a tile's edge is the same as in the whole mask (no seams between
  // tiles). A fresh Mat: the cached mask is shared by other requests and never written.
  const cv::Rect grown =
      cv::Rect(r.x - scale, r.y - scale, r.width + 2 * scale, r.height + 2 * scale) & cv::Rect(0, 0, mask.cols, mask.rows);
  const int ox = (r.x - grown.x) / scale, oy = (r.y - grown.y) / scale;
  const int w = std::max(1, (r.width + scale - 1) / scale), h = std::max(1, (r.height + scale - 1) / scale);
  cv::Mat small = scaled(mask(grown), scale, cv::INTER_AREA);
  cv::Mat grown_part = small >= 128;  // a new Mat (small may be a view of the cached mask)
  cv::Mat grown_inner;
  cv::erode(grown_part, grown_inner, cv::Mat());
  const cv::Rect crop = cv::Rect(ox, oy, w, h) & cv::Rect(0, 0, grown_part.cols, grown_part.rows);
  const cv::Mat part = grown_part(crop), inner = grown_inner(crop);
  cv::Mat tile(kTile, kTile, CV_8UC4, cv::Scalar::all(0));
  for (int row = 0; row < part.rows; ++row) {
    const uint8_t* p = part.ptr<uint8_t>(row);
    const uint8_t* q = inner.ptr<uint8_t>(row);
    cv::Vec4b* t = tile.ptr<cv::Vec4b>(row);
    for (int col = 0; col < part.cols; ++col)
      if (p[col]) t[col] = q[col] ? cv::Vec4b(255, 220, 0, 110) : cv::Vec4b(255, 220, 0, 255);
  }
  return tile;
}

std::string encode(const cv::Mat& image, const char* ext) {
  cv::Mat bgr;
  if (image.channels() == 3)
    cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
  else if (image.channels() == 4)
    cv::cvtColor(image, bgr, cv::COLOR_RGBA2BGRA);
  else
    bgr = image;
  std::vector<uint8_t> bytes;
  const std::vector<int> params = std::string(ext) == ".jpg" ? std::vector<int>{cv::IMWRITE_JPEG_QUALITY, 88}
                                                               : std::vector<int>{cv::IMWRITE_PNG_COMPRESSION, 3};
  if (!cv::imencode(ext, bgr, bytes, params)) fail(500, "could not encode a picture");
  return std::string(bytes.begin(), bytes.end());
}

// ---- the workbench -----------------------------------------------------------------

Workbench::Workbench(const ServeOptions& options, ModelAccess models)
    : options_(options),
      models_(std::move(models)),
      roots_(options.roots),
      images_(static_cast<size_t>(options.workbench_cache_mb * 1024.0 * 1024.0)),
      annotator_(std::make_unique<Annotator>(roots_, images_, models_)),
      runs_(std::make_unique<Runs>(roots_, models_, *annotator_, options_)) {}

Workbench::~Workbench() { stop(); }

void Workbench::stop() {
  if (runs_) runs_->stop();
}

bool Workbench::handle(const std::string& method, const std::string& path, const httplib::Request& req,
                       httplib::Response& res) {
  // `path` always ends in '/' (the server adds one).
  const std::string route = path.size() > 1 ? path.substr(0, path.size() - 1) : path;
  if (route == "/" || route.rfind("/app/", 0) == 0) {
    if (method != "GET") fail(405, "method " + method + " is not allowed on " + route);
    serve_static(route == "/" ? "index.html" : route.substr(1), res);
    return true;
  }
  if (route.rfind("/api/", 0) != 0) return false;
  const bool get = method == "GET", post = method == "POST";
  if (route.rfind("/api/annotate/", 0) == 0) {
    if (!post && route != "/api/annotate/mask" && route != "/api/annotate/tile")
      fail(405, "method " + method + " is not allowed on " + route);
    annotator_->handle(route.substr(14), req, res);
    return true;
  }
  if (route.rfind("/api/gbmseg/", 0) == 0 || route.rfind("/api/jobs/", 0) == 0 || route == "/api/run" ||
      route.rfind("/api/review/", 0) == 0 || route.rfind("/api/export/", 0) == 0) {
    runs_->handle(route, req, res);
    return true;
  }
  if (!get) fail(405, "method " + method + " is not allowed on " + route);
  files(route, req, res);
  return true;
}

void Workbench::serve_static(const std::string& path, httplib::Response& res) {
  const WebAsset* asset = find_web_asset(path);
  if (!asset) fail(404, "no such page: /" + path);
  res.status = 200;
  res.body.assign(reinterpret_cast<const char*>(asset->data), asset->size);
  res.set_header("Content-Type", asset->content_type);
  res.set_header("Cache-Control", "no-cache");
}

namespace {

const char* content_type_of(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".csv") return "text/csv; charset=utf-8";
  if (ext == ".json") return "application/json";
  if (ext == ".html") return "text/html; charset=utf-8";
  return nullptr;
}

std::string read_file_bytes(const fs::path& p, uintmax_t limit) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(p, ec);
  if (ec || !fs::is_regular_file(p)) fail(404, p.filename().string() + ": not a regular file");
  if (size > limit) fail(413, p.filename().string() + " is larger than " + std::to_string(limit >> 20) + " MiB");
  std::ifstream in(p, std::ios::binary);
  std::string bytes(static_cast<size_t>(size), '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) fail(500, "could not read " + p.filename().string());
  return bytes;
}

}  // namespace

json Workbench::image_info(const fs::path& file, const std::string& virtual_path) {
  constexpr size_t kMaxInfos = 4096;
  const std::string key = ImageCache::key_of(file);
  {
    std::lock_guard<std::mutex> lock(info_mutex_);
    auto it = infos_.find(key);
    if (it != infos_.end()) {
      json j = it->second;
      j["path"] = virtual_path;
      return j;
    }
  }
  io::ImageInfo info;
  try {
    info = io::read_image_info(file.string());
  } catch (const Error& e) {
    fail(400, e.what());
  }
  json j = json::parse(io::image_info_json(file.filename().string(), info));
  j["tile_size"] = kTile;
  j["max_zoom"] = max_zoom(info.width, info.height);
  const io::Calibration& c = info.calibration;
  j["nm_per_pixel"] = c.known() ? json((c.nm_per_pixel_x + c.nm_per_pixel_y) / 2) : json();
  // The bits per sample of data_type ("uint8" -> 8, "float32" -> 32, "bit" -> 1).
  int bits = info.data_type == "bit" ? 1 : 0;
  for (char ch : info.data_type)
    if (ch >= '0' && ch <= '9') bits = bits * 10 + (ch - '0');
  j["bit_depth"] = bits > 0 ? json(bits) : json();
  {
    std::lock_guard<std::mutex> lock(info_mutex_);
    if (infos_.size() >= kMaxInfos) infos_.clear();
    infos_[key] = j;
  }
  j["path"] = virtual_path;
  return j;
}

void Workbench::files(const std::string& route, const httplib::Request& req, httplib::Response& res) {
  if (route == "/api/roots") return reply_json(res, {{"roots", roots_.list()}, {"version", NEPHROSEG_VERSION_TEXT}});
  if (route == "/api/models") {
    json models = models_.list();
    models.push_back({{"name", "classical"}, {"kind", "classical"}, {"type", "weight-free"}});
    json ranges = json::array();
    for (const measure::ReferenceRange& r : measure::reference_ranges())
      ranges.push_back({{"id", r.id}, {"population", r.population}, {"low_nm", r.low_nm}, {"high_nm", r.high_nm}});
    return reply_json(res, {{"models", models},
                            {"reference_ranges", ranges},
                            {"default_reference_range", measure::default_reference_id()},
                            {"presets", {"authors-code", "paper"}},
                            {"precisions", {"auto", "fp32", "bf16", "int8"}}});
  }
  if (route == "/api/list") {
    std::string virt = query(req, "path");
    while (virt.size() > 1 && virt.back() == '/') virt.pop_back();  // children as "<virt>/<name>"
    const fs::path dir = roots_.resolve(virt);
    if (!fs::is_directory(dir)) fail(400, "'" + virt + "' is not a folder");
    json folders = json::array(), images = json::array(), other = json::array();
    std::vector<fs::directory_entry> entries;
    std::error_code ec;
    for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
         it.increment(ec)) {
      entries.push_back(*it);
      if (entries.size() > 20000) fail(413, "'" + virt + "' holds more than 20000 entries");
    }
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.path() < b.path(); });
    for (const auto& e : entries) {
      const std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.') continue;
      const std::string child = virt + "/" + name;
      std::error_code ec2;
      if (e.is_directory(ec2)) {
        folders.push_back({{"name", name}, {"path", child}, {"is_run", fs::exists(e.path() / "summary.csv")}});
      } else if (e.is_regular_file(ec2)) {
        const json item = {{"name", name}, {"path", child}, {"bytes", e.file_size(ec2)}};
        (io::is_image_file(e.path().string()) ? images : other).push_back(item);
      }
    }
    const size_t slash = virt.rfind('/');
    return reply_json(res, {{"path", virt},
                            {"parent", slash == std::string::npos ? json() : json(virt.substr(0, slash))},
                            {"folders", folders},
                            {"images", images},
                            {"files", other}});
  }
  if (route == "/api/info") {
    const std::string virt = query(req, "path");
    return reply_json(res, image_info(roots_.resolve(virt), virt));
  }
  if (route == "/api/thumb") {
    const fs::path file = roots_.resolve(query(req, "path"));
    const int size = req.has_param("size") ? static_cast<int>(query_int(req, "size", 16, 512)) : 160;
    const auto image = images_.rgb(file);
    const double s = std::min(1.0, double(size) / std::max(image->cols, image->rows));
    cv::Mat thumb;
    cv::resize(*image, thumb, cv::Size(std::max(1, int(image->cols * s)), std::max(1, int(image->rows * s))), 0, 0,
               cv::INTER_AREA);
    return reply_bytes(res, encode(thumb, ".jpg"), "image/jpeg");
  }
  if (route == "/api/tile") {
    const fs::path file = roots_.resolve(query(req, "path"));
    const int z = static_cast<int>(query_int(req, "z", 0, 30));
    const int x = static_cast<int>(query_int(req, "x", 0, 1 << 20)), y = static_cast<int>(query_int(req, "y", 0, 1 << 20));
    const std::string style = req.has_param("style") ? req.get_param_value("style") : "image";
    if (style == "mask") return reply_bytes(res, encode(mask_tile(*images_.mask(file), z, x, y), ".png"), "image/png");
    if (style != "image") fail(400, "style must be image or mask (got \"" + style.substr(0, 20) + "\")");
    return reply_bytes(res, encode(image_tile(*images_.rgb(file), z, x, y), ".jpg"), "image/jpeg");
  }
  if (route == "/api/file") {
    const fs::path file = roots_.resolve(query(req, "path"));
    const char* type = content_type_of(file);
    if (!type) fail(403, file.filename().string() + ": only PNG, JPEG, CSV, JSON and HTML files are sent");
    return reply_bytes(res, read_file_bytes(file, 256ull << 20), type);
  }
  fail(404, "no route GET " + route);
}

}  // namespace nephroseg::serve

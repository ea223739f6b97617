// serve/workbench.h (internal): the micrograph workbench behind `nephroseg serve
// --root DIR` (docs/workbench.md): the single-page app at / and its JSON API at /api/.
//
// Files: the browser names files by virtual paths "<root>/<relative>" (Roots below); the
// server resolves them, symlinks included, and refuses with 403 whatever lies outside
// the roots. Images are decoded once into an LRU (ImageCache) and sent as 256 x 256
// pyramid tiles and thumbnails, never whole. Annotation sessions (workbench_annotate.cpp)
// hold one mask each with its undo history; GBMSeg jobs and the review of their folders
// are in workbench_runs.cpp.
//
// Thread safety: every member is safe from the server's connection threads.
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/core/mat.hpp>

#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/serve/server.h"

namespace nephroseg::sam {
struct SamPrompt;
struct SamResult;
}  // namespace nephroseg::sam

namespace nephroseg::serve {

/// What the workbench uses of the server's model registry.
struct ModelAccess {
  /// SAM / MedSAM entry `entry` on `rgb`, its embedding cached under `image_key`, in the
  /// entry's queue (throws RequestError 404 / 503 as POST /sam/ does).
  std::function<sam::SamResult(const std::string& entry, const cv::Mat& rgb, const std::string& image_key,
                               const sam::SamPrompt& prompt)>
      predict;
  /// The entry's low-res mask side (SAM: 256), loading the model when needed.
  std::function<int64_t(const std::string& entry)> low_res_size;
  /// {"name", "kind", "type"} of every entry.
  std::function<nlohmann::json()> list;
  /// The gbmseg backend of an entry ("classical" = the weight-free one); `role` is
  /// "features" (kind dinov2) or "segmenter" (sam / medsam). Throws RequestError 400.
  std::function<gbmseg::BackendSpec(const std::string& entry, const std::string& role)> backend;
};

// ---- answers -----------------------------------------------------------------------

void reply_json(httplib::Response& res, const nlohmann::json& body, int status = 200);
void reply_bytes(httplib::Response& res, std::string bytes, const std::string& content_type);
/// A JSON body (400 when it is not an object).
nlohmann::json body_object(const httplib::Request& req);
/// Field `key` of `body` as a string / a number; 400 naming it when missing or mistyped.
std::string required_string(const nlohmann::json& body, const char* key);
double required_number(const nlohmann::json& body, const char* key);
/// Query parameter `key` (400 when missing); as an integer in [lo, hi].
std::string query(const httplib::Request& req, const char* key);
long long query_int(const httplib::Request& req, const char* key, long long lo, long long hi);

// ---- paths -------------------------------------------------------------------------

/// The folders the browser may see, by name; virtual paths "<name>/<relative>".
class Roots {
 public:
  explicit Roots(const std::vector<std::string>& dirs);
  bool empty() const { return roots_.empty(); }
  /// The real path of a virtual one. 403: absolute, a ".." component, an unknown root,
  /// or (symlinks resolved) outside its root; 404 when `must_exist` and it does not.
  std::filesystem::path resolve(const std::string& virtual_path, bool must_exist = true) const;
  /// The virtual path of a real path inside a root ("" when in none).
  std::string virtual_of(const std::filesystem::path& real) const;
  nlohmann::json list() const;

 private:
  struct Root {
    std::string name;
    std::filesystem::path real;  // canonical
  };
  std::vector<Root> roots_;
};

// ---- decoded images ----------------------------------------------------------------

/// Decoded 8-bit images (RGB, or a mask 0/255) by file, path + size + mtime as the key,
/// LRU bounded in bytes.
class ImageCache {
 public:
  explicit ImageCache(size_t limit_bytes) : limit_(limit_bytes) {}
  /// io::read_image_rgb (16-bit and DM files through io::to_rgb8's window).
  std::shared_ptr<const cv::Mat> rgb(const std::filesystem::path& file);
  /// io::read_mask (non-zero = foreground) as 0/255.
  std::shared_ptr<const cv::Mat> mask(const std::filesystem::path& file);
  /// The key rgb() files an image under (for the embedding cache).
  static std::string key_of(const std::filesystem::path& file);

 private:
  std::shared_ptr<const cv::Mat> get(const std::string& key, const std::function<cv::Mat()>& load);
  std::mutex mutex_;
  size_t limit_, bytes_ = 0;
  std::list<std::pair<std::string, std::shared_ptr<const cv::Mat>>> order_;
  std::unordered_map<std::string, decltype(order_)::iterator> index_;
};

/// The pyramid: max zoom = ceil(log2(max(w, h) / 256)), 0 for small images.
int max_zoom(int width, int height);
/// Tile (z, x, y) of `image` (8-bit, 1 or 3 channels), 256 x 256; pixels past the image
/// black. 404 past the pyramid.
cv::Mat image_tile(const cv::Mat& image, int z, int x, int y);
/// The same tile of a 0/255 mask drawn for an overlay: RGBA, foreground yellow and
/// translucent with an opaque outline, background transparent.
cv::Mat mask_tile(const cv::Mat& mask, int z, int x, int y);
std::string encode(const cv::Mat& image, const char* ext);  // ".png" / ".jpg"; RGB or RGBA in

// ---- the parts ---------------------------------------------------------------------

class Annotator;  // workbench_annotate.cpp
class Runs;       // workbench_runs.cpp

class Workbench {
 public:
  Workbench(const ServeOptions& options, ModelAccess models);
  ~Workbench();
  /// Answers `path` (token prefix removed) when it is the workbench's: "/", "/app/...",
  /// "/api/..."; false otherwise.
  bool handle(const std::string& method, const std::string& path, const httplib::Request& req,
              httplib::Response& res);
  /// Cancels running jobs and waits for them (Server::stop).
  void stop();

 private:
  void files(const std::string& route, const httplib::Request& req, httplib::Response& res);
  void serve_static(const std::string& path, httplib::Response& res);

  /// GET /api/info's answer for a file (io::read_image_info decodes the whole image,
  /// and the page asks for every image of a folder): by ImageCache::key_of, bounded.
  nlohmann::json image_info(const std::filesystem::path& file, const std::string& virtual_path);

  const ServeOptions& options_;
  ModelAccess models_;
  Roots roots_;
  ImageCache images_;
  std::mutex info_mutex_;
  std::unordered_map<std::string, nlohmann::json> infos_;
  std::unique_ptr<Annotator> annotator_;
  std::unique_ptr<Runs> runs_;
};

class Annotator {
 public:
  Annotator(const Roots& roots, ImageCache& images, const ModelAccess& models);
  ~Annotator();
  /// "/api/annotate/<action>".
  void handle(const std::string& action, const httplib::Request& req, httplib::Response& res);
  /// The session's current mask (0/255, full size); 404 for an unknown session.
  cv::Mat mask_of(const std::string& session);

  struct Session;

 private:
  std::shared_ptr<Session> find(const std::string& id);
  const Roots& roots_;
  ImageCache& images_;
  const ModelAccess& models_;
  std::mutex mutex_;
  std::list<std::shared_ptr<Session>> sessions_;  // most recent first
  int next_id_ = 1;
};

class Runs {
 public:
  Runs(const Roots& roots, const ModelAccess& models, Annotator& annotator, const ServeOptions& options);
  ~Runs();
  /// "/api/gbmseg/run", "/api/jobs/...", "/api/run", "/api/review/...", "/api/export/...".
  void handle(const std::string& route, const httplib::Request& req, httplib::Response& res);
  void stop();

  struct Job;

 private:
  void start_job(const httplib::Request& req, httplib::Response& res);
  void job_status(const std::string& id, bool cancel, httplib::Response& res);
  nlohmann::json run_listing(const std::filesystem::path& dir) const;
  void mark(const httplib::Request& req, httplib::Response& res);
  void save(const httplib::Request& req, httplib::Response& res);
  void export_file(const std::string& what, const httplib::Request& req, httplib::Response& res);
  nlohmann::json row_json(const std::filesystem::path& dir, const std::vector<std::string>& header,
                          const std::vector<std::string>& cells, const nlohmann::json& review) const;

  const Roots& roots_;
  const ModelAccess& models_;
  Annotator& annotator_;
  const ServeOptions& options_;
  std::mutex mutex_;  // jobs_, stopped_ and the review files
  std::vector<std::shared_ptr<Job>> jobs_;
  bool stopped_ = false;  // stop() was called: no new jobs (503)
};

}  // namespace nephroseg::serve

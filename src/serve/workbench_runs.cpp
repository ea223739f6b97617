// The workbench's GBMSeg runs, their review and export (serve/workbench.h,
// docs/workbench.md): jobs run workloads::run_gbmseg_batch in a thread of their own;
// a corrected mask goes through workloads::revise_gbmseg_target.
#include <zlib.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/precision.h"
#include "nephroseg/gbmseg/prompt_names.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/inputs.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/workloads/gbmseg.h"
#include "serve/request.h"
#include "serve/workbench.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace nephroseg::serve {

namespace {

constexpr size_t kMaxTargets = 10000;
constexpr size_t kMaxReferences = 16;
constexpr uintmax_t kMaxZipBytes = uintmax_t{2} << 30;

/// Thrown by a job's event sink to stop the batch after the current target.
struct Cancelled {};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// A CSV cell as JSON: a number when the whole cell is one, null when empty, else text.
json cell_value(const std::string& s) {
  if (s.empty()) return nullptr;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end && *end == '\0' && std::isfinite(v)) return v;
  return s;
}

// ---- a stored (uncompressed) zip ---------------------------------------------------

void put16(std::string& out, uint32_t v) {
  out += static_cast<char>(v & 0xff);
  out += static_cast<char>((v >> 8) & 0xff);
}
void put32(std::string& out, uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}

/// The files as one zip archive, each stored under its file name (method 0, CRC-32).
std::string zip_stored(const std::vector<fs::path>& files) {
  std::string archive, directory;
  uintmax_t total = 0;
  for (const fs::path& f : files) total += fs::file_size(f);
  if (total > kMaxZipBytes) fail(413, "the masks hold more than 2 GiB; copy the run folder instead");
  for (const fs::path& f : files) {
    const std::string name = f.filename().string();
    const std::string data = read_text(f);
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const uint32_t offset = static_cast<uint32_t>(archive.size());
    // local file header
    put32(archive, 0x04034b50);
    put16(archive, 20);      // version needed
    put16(archive, 0x0800);  // UTF-8 name
    put16(archive, 0);       // stored
    put16(archive, 0);       // time
    put16(archive, 0x21);    // date: 1980-01-01
    put32(archive, crc);
    put32(archive, static_cast<uint32_t>(data.size()));
    put32(archive, static_cast<uint32_t>(data.size()));
    put16(archive, static_cast<uint32_t>(name.size()));
    put16(archive, 0);
    archive += name;
    archive += data;
    // its central directory entry
    put32(directory, 0x02014b50);
    put16(directory, 20);
    put16(directory, 20);
    put16(directory, 0x0800);
    put16(directory, 0);
    put16(directory, 0);
    put16(directory, 0x21);
    put32(directory, crc);
    put32(directory, static_cast<uint32_t>(data.size()));
    put32(directory, static_cast<uint32_t>(data.size()));
    put16(directory, static_cast<uint32_t>(name.size()));
    put16(directory, 0);  // extra
    put16(directory, 0);  // comment
    put16(directory, 0);  // disk
    put16(directory, 0);  // internal attributes
    put32(directory, 0);  // external attributes
    put32(directory, offset);
    directory += name;
  }
  const uint32_t dir_offset = static_cast<uint32_t>(archive.size());
  archive += directory;
  put32(archive, 0x06054b50);
  put16(archive, 0);
  put16(archive, 0);
  put16(archive, static_cast<uint32_t>(files.size()));
  put16(archive, static_cast<uint32_t>(files.size()));
  put32(archive, static_cast<uint32_t>(directory.size()));
  put32(archive, dir_offset);
  put16(archive, 0);
  return archive;
}

json read_review(const fs::path& dir) {
  const fs::path p = dir / "review.json";
  if (!fs::is_regular_file(p)) return json::object();
  json j = json::parse(read_text(p), nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : json::object();
}

void write_review(const fs::path& dir, const json& review) {
  write_file_atomically((dir / "review.json").string(), review.dump(1) + "\n");
}

/// The row of a target record while a job runs (summary.csv's columns that it knows).
json record_row(const workloads::GbmSegTargetRecord& r) {
  json row = {{"name", r.name},
              {"status", item_status_names().name(r.status)},
              {"message", r.message},
              {"width", r.width},
              {"height", r.height},
              {"n_pos", r.n_pos < 0 ? json() : json(r.n_pos)},
              {"n_neg", r.n_neg < 0 ? json() : json(r.n_neg)},
              {"total_s", std::isfinite(r.t_total) ? json(r.t_total) : json()}};
  if (r.metrics) row["dice"] = r.metrics->dice;
  if (r.thickness) {
    const auto& t = *r.thickness;
    auto num = [](double v) { return std::isfinite(v) ? json(v) : json(); };
    row["thickness_oi_harmonic_3d_nm"] = num(t.oi_harmonic_3d_nm);
    row["thickness_direct_median_nm"] = num(t.direct.median);
    row["thickness_direct_mean_nm"] = num(t.direct.mean);
    row["thickness_class"] = t.verdict;
    row["thickness_note"] = t.note;
  }
  return row;
}

}  // namespace

struct Runs::Job {
  std::string id;
  fs::path out;
  std::string out_virtual;
  std::atomic<bool> cancel{false};
  std::mutex mutex;
  std::string state = "running";
  size_t done = 0, total = 0;
  json rows = json::array();
  std::string error;
  std::thread thread;
};

Runs::Runs(const Roots& roots, const ModelAccess& models, Annotator& annotator, const ServeOptions& options)
    : roots_(roots), models_(models), annotator_(annotator), options_(options) {}

Runs::~Runs() { stop(); }

void Runs::stop() {
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;  // a request still in flight cannot start a job after this
    jobs = jobs_;
  }
  for (auto& j : jobs) j->cancel = true;
  for (auto& j : jobs)
    if (j->thread.joinable()) j->thread.join();
}

void Runs::handle(const std::string& route, const httplib::Request& req, httplib::Response& res) {
  const bool post = req.method == "POST", get = req.method == "GET";
  if (route == "/api/gbmseg/run" && post) return start_job(req, res);
  if (route.rfind("/api/jobs/", 0) == 0) {
    std::string id = route.substr(10);
    bool cancel = false;
    if (id.size() > 7 && id.compare(id.size() - 7, 7, "/cancel") == 0) {
      id.resize(id.size() - 7);
      cancel = true;
      if (!post) fail(405, "cancel is a POST");
    } else if (!get) {
      fail(405, "method " + req.method + " is not allowed on " + route);
    }
    return job_status(id, cancel, res);
  }
  if (route == "/api/run" && get) {
    const std::string virt = query(req, "path");
    return reply_json(res, run_listing(roots_.resolve(virt)));
  }
  if (route == "/api/review/mark" && post) return mark(req, res);
  if (route == "/api/review/save" && post) return save(req, res);
  if (route.rfind("/api/export/", 0) == 0 && get) return export_file(route.substr(12), req, res);
  fail(404, "no route " + req.method + " " + route);
}

// ---- jobs --------------------------------------------------------------------------

void Runs::start_job(const httplib::Request& req, httplib::Response& res) {
  const json body = body_object(req);
  workloads::GbmSegBatchOptions o;
  // References: pairs of files inside the roots.
  const json* refs = field(body, "references");
  if (!refs || !refs->is_array() || refs->empty())
    fail(400, "\"references\" must list at least one {\"image\", \"mask\"} (annotate a reference first)");
  if (refs->size() > kMaxReferences) fail(400, "at most " + std::to_string(kMaxReferences) + " references");
  for (const json& r : *refs) {
    if (!r.is_object()) fail(400, "each reference must be {\"image\": path, \"mask\": path}");
    o.references.push_back({roots_.resolve(required_string(r, "image")).string(),
                            roots_.resolve(required_string(r, "mask")).string()});
  }
  // Targets: a list of images, or a folder; ground truth: a folder paired by stem.
  std::map<std::string, std::string> truth;
  const json* gt = field(body, "ground_truth");
  fs::path gt_dir;
  if (gt && !gt->is_null()) {
    if (!gt->is_string()) fail(400, "\"ground_truth\" must be a folder path");
    gt_dir = roots_.resolve(gt->get<std::string>());
    if (!fs::is_directory(gt_dir)) fail(400, "\"ground_truth\" must be a folder");
    for (const std::string& f : io::list_image_files(gt_dir.string())) truth[io::file_stem(f)] = f;
  }
  const json* targets = field(body, "targets");
  const json* folder = field(body, "folder");
  std::vector<fs::path> files;
  if (targets && !targets->is_null()) {
    if (!targets->is_array() || targets->empty()) fail(400, "\"targets\" must be a non-empty list of image paths");
    if (targets->size() > kMaxTargets) fail(400, "at most " + std::to_string(kMaxTargets) + " targets per run");
    for (const json& t : *targets) {
      if (!t.is_string()) fail(400, "each target must be a path");
      files.push_back(roots_.resolve(t.get<std::string>()));
    }
  } else if (folder && folder->is_string()) {
    const fs::path dir = roots_.resolve(folder->get<std::string>());
    if (!fs::is_directory(dir)) fail(400, "\"folder\" must be a folder");
    for (const std::string& f : io::list_image_files(dir.string())) {
      const std::string stem = io::file_stem(f);
      if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".mask") == 0) continue;  // saved references
      files.emplace_back(f);
    }
    if (files.size() > kMaxTargets) fail(400, "the folder holds more than " + std::to_string(kMaxTargets) + " images");
  } else {
    fail(400, "give \"targets\" (a list of images) or \"folder\"");
  }
  if (files.empty()) fail(400, "no target images to segment");
  for (const fs::path& f : files) {
    const std::string stem = io::file_stem(f.string());
    auto it = truth.find(stem);
    o.items.push_back({stem, f.string(), it == truth.end() ? "" : it->second});
  }
  // The output folder, inside a root.
  const std::string out_virt = required_string(body, "out");
  const fs::path out = roots_.resolve(out_virt, /*must_exist=*/false);
  if (fs::exists(out) && !fs::is_directory(out)) fail(400, "'" + out_virt + "' exists and is not a folder");
  o.out_dir = out.string();
  // The run writes <name>.png beside its other outputs: a folder holding the inputs would
  // have targets, references or ground truth overwritten (or taken for outputs).
  {
    std::vector<std::string> inputs;
    for (const auto& r : o.references) inputs.insert(inputs.end(), {r.image, r.mask});
    for (const auto& item : o.items) inputs.insert(inputs.end(), {item.path, item.partner});
    for (const std::string& f : inputs)
      if (!f.empty() && fs::path(f).parent_path() == out)
        fail(400, "'" + out_virt + "' holds input images (" + fs::path(f).filename().string() +
                      "): write the run into a folder of its own, e.g. '" + out_virt + "/gbmseg-run'");
  }
  // Backends, precision, preset.
  const Precision precision = [&] {
    try {
      return precision_names().parse(string_of(body, "precision", "auto"), "precision");
    } catch (const Error& e) {
      fail(400, e.what());
    }
  }();
  o.features = models_.backend(string_of(body, "features", "classical"), "features");
  o.segmenter = models_.backend(string_of(body, "segmenter", "classical"), "segmenter");
  if (o.features.kind != "classical") o.features.precision = resolve_precision(precision);
  if (o.segmenter.kind != "classical") o.segmenter.precision = resolve_precision(precision);
  try {
    o.preset = gbmseg::prompt_preset_names().parse(string_of(body, "preset", "authors-code"), "preset");
  } catch (const Error& e) {
    fail(400, e.what());
  }
  o.prompts = gbmseg::prompt_options_for(o.preset);
  // Pixel size: "auto" (each target's calibration) or nm per pixel for uncalibrated files.
  const json* nm = field(body, "nm_per_pixel");
  if (nm && nm->is_number()) {
    const double v = nm->get<double>();
    if (!std::isfinite(v) || v <= 0) fail(400, "\"nm_per_pixel\" must be a positive number or \"auto\"");
    o.measure.nm_per_pixel = std::to_string(v);
  } else if (nm && !nm->is_null() && !(nm->is_string() && (nm->get<std::string>() == "auto" || nm->get<std::string>().empty()))) {
    fail(400, "\"nm_per_pixel\" must be a positive number or \"auto\"");
  }
  const json* range = field(body, "reference_range");
  if (range && !range->is_null()) {
    if (!range->is_string()) fail(400, "\"reference_range\" must be a range id (GET /api/models lists them)");
    try {
      o.measure.range = measure::find_reference_range(range->get<std::string>());
    } catch (const Error& e) {
      fail(400, e.what());
    }
  }
  const json* overwrite = field(body, "overwrite");
  o.overwrite = overwrite && overwrite->is_boolean() && overwrite->get<bool>();

  // Made before the job is registered: a folder that cannot be made must not leave a
  // job "running" on it (every later run there would get 409).
  {
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec || !fs::is_directory(out))
      fail(400, "cannot create the output folder '" + out_virt + "'" + (ec ? ": " + ec.message() : std::string()));
  }
  auto job = std::make_shared<Job>();
  job->out = out;
  job->out_virtual = out_virt;
  job->total = o.items.size();
  Job* raw = job.get();
  auto run = [raw, o] {
    auto sink = [raw](const workloads::Event& e) {
      if (e.kind == workloads::Event::Kind::kItemFinished) {
        const auto* d = std::any_cast<const workloads::GbmSegEventDetail*>(&e.detail);
        std::lock_guard<std::mutex> lock(raw->mutex);
        ++raw->done;
        if (d && *d && (*d)->record) raw->rows.push_back(record_row(*(*d)->record));
      }
      if ((e.kind == workloads::Event::Kind::kItemFinished || e.kind == workloads::Event::Kind::kModelsReady) &&
          raw->cancel.load())
        throw Cancelled{};
    };
    std::string state = "done", error;
    try {
      workloads::run_gbmseg_batch(o, sink);
    } catch (const Cancelled&) {
      state = "cancelled";
    } catch (const std::exception& e) {
      state = "failed";
      error = e.what();
    } catch (...) {
      state = "failed";
      error = "the run stopped on an unexpected error";
    }
    std::lock_guard<std::mutex> lock(raw->mutex);
    raw->state = state;
    raw->error = error;
  };
  {
    // Registered and started under mutex_, so that stop() sees either no job or one
    // whose thread it can join.
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) fail(503, "the server is stopping: no new runs");
    for (const auto& j : jobs_) {
      std::lock_guard<std::mutex> jl(j->mutex);
      if (j->state == "running" && j->out == out)
        fail(409, "a GBMSeg run is already writing '" + out_virt + "' (job " + j->id + ")");
    }
    job->id = "j" + std::to_string(jobs_.size() + 1);
    job->thread = std::thread(run);  // a std::system_error here leaves no job behind
    jobs_.push_back(job);
  }
  reply_json(res, {{"job", job->id}, {"out", out_virt}, {"total", job->total}});
}

void Runs::job_status(const std::string& id, bool cancel, httplib::Response& res) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& j : jobs_)
      if (j->id == id) job = j;
  }
  if (!job) fail(404, "no job \"" + id.substr(0, 40) + "\"");
  if (cancel) job->cancel = true;
  std::lock_guard<std::mutex> lock(job->mutex);
  reply_json(res, {{"job", job->id},
                   {"state", job->state == "running" && job->cancel ? "cancelling" : job->state},
                   {"done", job->done},
                   {"total", job->total},
                   {"rows", job->rows},
                   {"error", job->error.empty() ? json() : json(job->error)},
                   {"out", job->out_virtual}});
}

// ---- review ------------------------------------------------------------------------

json Runs::row_json(const fs::path& dir, const std::vector<std::string>& header, const std::vector<std::string>& cells,
                    const json& review) const {
  json row = json::object();
  for (size_t i = 0; i < header.size(); ++i) row[header[i]] = cell_value(i < cells.size() ? cells[i] : "");
  const std::string name = row.value("name", json("")).is_string() ? row["name"].get<std::string>() : "";
  row["name"] = name;  // never a number, even when the stem looks like one
  auto file = [&](const std::string& suffix) -> json {
    const fs::path p = dir / (name + suffix);
    return fs::is_regular_file(p) ? json(roots_.virtual_of(p)) : json();
  };
  const json target = row.value("target", json());
  row["image"] = target.is_string() ? json(roots_.virtual_of(fs::weakly_canonical(target.get<std::string>()))) : json();
  if (row["image"] == "") row["image"] = nullptr;
  row["mask"] = file(".png");
  row["auto_mask"] = file(".auto.png");
  row["overlay"] = file(".overlay.png");
  row["thickness_map"] = file(".thickness.png");
  const json r = review.value(name, json::object());
  row["review"] = r.is_object() ? r.value("review", "") : "";
  row["edited"] = r.is_object() && r.value("edited", false);
  // The final prompts, in the mask's pixels (the record holds them at S x S).
  json prompts = {{"positive", json::array()}, {"negative", json::array()}};
  const fs::path record_path = dir / (name + ".prompts.json");
  if (fs::is_regular_file(record_path) && fs::file_size(record_path) < (64u << 20)) {
    const json rec = json::parse(read_text(record_path), nullptr, false);
    if (rec.is_object() && rec.contains("stages") && rec["stages"].is_object()) {
      const json opts = rec.value("options", json::object());
      const double S = opts.is_object() && opts.value("size", json()).is_number() ? opts["size"].get<double>() : 0;
      const double w = row.value("width", json()).is_number() ? row["width"].get<double>() : 0;
      const double h = row.value("height", json()).is_number() ? row["height"].get<double>() : 0;
      for (const char* key : {"final_pos", "final_neg"}) {
        const json pts = rec["stages"].value(key, json::array());
        if (!pts.is_array() || S <= 0) continue;
        for (const json& p : pts)
          if (p.is_array() && p.size() == 2 && p[0].is_number() && p[1].is_number())
            prompts[key == std::string("final_pos") ? "positive" : "negative"].push_back(
                {(p[0].get<double>() + 0.5) * w / S, (p[1].get<double>() + 0.5) * h / S});
      }
    }
  }
  row["prompts"] = prompts;
  return row;
}

json Runs::run_listing(const fs::path& dir) const {
  const fs::path csv = dir / "summary.csv";
  if (!fs::is_regular_file(csv)) fail(404, "'" + roots_.virtual_of(dir) + "' holds no GBMSeg run (no summary.csv)");
  std::vector<io::CsvRow> rows;
  try {
    rows = io::read_csv(csv.string());
  } catch (const Error& e) {
    fail(400, e.what());
  }
  if (rows.empty()) fail(400, "summary.csv is empty");
  const json review = read_review(dir);
  json out_rows = json::array(), mean = nullptr;
  const std::vector<std::string>& header = rows[0];
  for (size_t i = 1; i < rows.size(); ++i) {
    json row = row_json(dir, header, rows[i], review);
    if (row.value("status", json()) == "mean")
      mean = row;
    else
      out_rows.push_back(row);
  }
  json run = json::parse(read_text(dir / "run.json"), nullptr, false);
  json measure = run.is_object() ? run.value("measure", json::object()) : json::object();
  return {{"path", roots_.virtual_of(dir)},
          {"columns", header},
          {"rows", out_rows},
          {"mean", mean},
          {"measured", std::find(header.begin(), header.end(), "thickness_class") != header.end()},
          {"with_ground_truth", std::find(header.begin(), header.end(), "dice") != header.end()},
          {"reference_range", measure.is_object() ? measure.value("reference_range", json()) : json()}};
}

void Runs::mark(const httplib::Request& req, httplib::Response& res) {
  const json body = body_object(req);
  const fs::path dir = roots_.resolve(required_string(body, "run"));
  const std::string name = required_string(body, "name");
  const std::string verdict = required_string(body, "review");
  if (verdict != "accepted" && verdict != "rejected" && !verdict.empty())
    fail(400, "\"review\" must be \"accepted\", \"rejected\" or \"\"");
  if (!fs::is_regular_file(dir / (name + ".png")) || name.find('/') != std::string::npos)
    fail(404, "the run has no target \"" + name.substr(0, 200) + "\"");
  std::lock_guard<std::mutex> lock(mutex_);
  json review = read_review(dir);
  review[name]["review"] = verdict;
  write_review(dir, review);
  reply_json(res, {{"name", name}, {"review", verdict}});
}

void Runs::save(const httplib::Request& req, httplib::Response& res) {
  const json body = body_object(req);
  const std::string run_virt = required_string(body, "run");
  const fs::path dir = roots_.resolve(run_virt);
  const std::string name = required_string(body, "name");
  const cv::Mat mask = annotator_.mask_of(required_string(body, "session"));
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& j : jobs_) {
    std::lock_guard<std::mutex> jl(j->mutex);
    if (j->state == "running" && j->out == dir) fail(409, "a GBMSeg run is still writing '" + run_virt + "'");
  }
  try {
    workloads::revise_gbmseg_target(dir.string(), name, mask);
  } catch (const Error& e) {
    fail(400, e.what());
  }
  json review = read_review(dir);
  review[name]["edited"] = true;
  write_review(dir, review);
  const json listing = run_listing(dir);
  for (const json& row : listing["rows"])
    if (row["name"] == name) return reply_json(res, {{"row", row}, {"mean", listing["mean"]}});
  fail(500, "the corrected row is missing from summary.csv");
}

void Runs::export_file(const std::string& what, const httplib::Request& req, httplib::Response& res) {
  const fs::path dir = roots_.resolve(query(req, "run"));
  const std::string folder = dir.filename().string();
  if (what == "report") {
    const fs::path p = dir / "report.html";
    if (!fs::is_regular_file(p)) fail(404, "this run has no report.html (it was not measured)");
    return reply_bytes(res, read_text(p), "text/html; charset=utf-8");
  }
  if (what == "summary.csv") {
    const fs::path csv = dir / "summary.csv";
    if (!fs::is_regular_file(csv)) fail(404, "this folder holds no summary.csv");
    const std::vector<io::CsvRow> rows = io::read_csv(csv.string());
    if (rows.empty()) fail(400, "summary.csv is empty");
    const size_t status = std::find(rows[0].begin(), rows[0].end(), "status") - rows[0].begin();
    const json review = read_review(dir);
    io::CsvRow header = rows[0];
    header.push_back("edited");
    header.push_back("review");
    std::vector<io::CsvRow> body(rows.begin() + 1, rows.end());
    for (io::CsvRow& row : body) {
      const json r = review.value(row.empty() ? "" : row[0], json::object());
      const bool is_mean = status < row.size() && row[status] == "mean";
      row.resize(rows[0].size());  // the mean row may be shorter
      row.push_back(is_mean ? "" : r.value("edited", false) ? "1" : "0");
      row.push_back(is_mean ? "" : r.value("review", std::string()));
    }
    const std::string out = io::to_csv(header, body);
    res.set_header("Content-Disposition", "attachment; filename=\"" + folder + "-summary.csv\"");
    return reply_bytes(res, out, "text/csv; charset=utf-8");
  }
  if (what == "masks.zip") {
    const fs::path csv = dir / "summary.csv";
    if (!fs::is_regular_file(csv)) fail(404, "this folder holds no summary.csv (no GBMSeg run)");
    const std::vector<io::CsvRow> rows = io::read_csv(csv.string());
    std::vector<fs::path> files;
    for (size_t i = 1; i < rows.size(); ++i) {
      if (rows[i].empty()) continue;
      for (const char* suffix : {".png", ".auto.png"}) {
        const fs::path p = dir / (rows[i][0] + suffix);
        if (rows[i][0].find('/') == std::string::npos && fs::is_regular_file(p)) files.push_back(p);
      }
    }
    res.set_header("Content-Disposition", "attachment; filename=\"" + folder + "-masks.zip\"");
    return reply_bytes(res, zip_stored(files), "application/zip");
  }
  fail(404, "no export \"" + what + "\" (summary.csv, report, masks.zip)");
}

}  // namespace nephroseg::serve

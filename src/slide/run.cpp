// The slide runner: plan, per-tile records, stitching, outputs.
#include "nephroseg/slide/run.h"
#include "nephroseg/slide/model_segmenter.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <list>
#include <numeric>
#include <unordered_map>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/geojson.h"
#include "slide/label_pyramid.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace nephroseg::slide {

const EnumNames<ObjectType>& object_type_names() {
  static const EnumNames<ObjectType> t("object type",
                                       {{ObjectType::kAnnotation, "annotation", {}}, {ObjectType::kDetection, "detection", {}}});
  return t;
}

const EnumNames<TissueMode>& tissue_mode_names() {
  static const EnumNames<TissueMode> t("tissue mode", {{TissueMode::kAuto, "auto", {}}, {TissueMode::kNone, "none", {}}});
  return t;
}

std::unique_ptr<TileSegmenter> make_segmenter(const std::string& name, const std::string& checkpoint) {
  SegmenterSpec spec;
  spec.name = name;
  spec.checkpoint = checkpoint;
  return make_segmenter(spec);
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One component of one tile's core (global work-pixel coordinates).
struct Component {
  int64_t area = 0;
  double sum_x = 0, sum_y = 0, score_sum = 0;
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // inclusive bbox
};

// Run-length encoding of an edge of labels: [value, count, value, count, ...].
json rle(const std::vector<int>& v) {
  json out = json::array();
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j < v.size() && v[j] == v[i]) ++j;
    out.push_back(v[i]);
    out.push_back(j - i);
    i = j;
  }
  return out;
}
std::vector<int> unrle(const json& j) {
  std::vector<int> v;
  for (size_t i = 0; i + 1 < j.size(); i += 2) v.insert(v.end(), j[i + 1].get<size_t>(), j[i].get<int>());
  return v;
}

struct TileRecord {
  bool present = false;
  std::vector<Component> components;
  std::vector<int> top, bottom, left, right;
};

std::string tile_stem(const std::string& out_dir, int index) {
  return (fs::path(out_dir) / "tiles" / ("t" + std::to_string(index))).string();
}

TileRecord load_record(const std::string& path) {
  std::ifstream in(path);
  NEPHRO_CHECK(in.good(), "cannot read tile record '", path, "'");
  json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    NEPHRO_FAIL("tile record '", path, "' is corrupt (", e.what(), "); delete it to redo the tile");
  }
  TileRecord r;
  r.present = true;
  for (const auto& c : j.at("components")) {
    Component k;
    k.area = c[0].get<int64_t>();
    k.sum_x = c[1].get<double>();
    k.sum_y = c[2].get<double>();
    k.score_sum = c[3].get<double>();
    k.x0 = c[4];
    k.y0 = c[5];
    k.x1 = c[6];
    k.y1 = c[7];
    r.components.push_back(k);
  }
  r.top = unrle(j.at("top"));
  r.bottom = unrle(j.at("bottom"));
  r.left = unrle(j.at("left"));
  r.right = unrle(j.at("right"));
  return r;
}

// One tile's core labels, run-length encoded per row (non-zero runs only): a few KB
// for a tile with a few objects instead of the 1 MiB of the decoded image, so that the
// cache's memory follows the objects, not the slide's width.
class TileLabels {
 public:
  explicit TileLabels(const cv::Mat& labels) : row_begin_(labels.rows + 1, 0) {
    for (int y = 0; y < labels.rows; ++y) {
      const uint16_t* l = labels.ptr<uint16_t>(y);
      for (int x = 0; x < labels.cols;) {
        if (!l[x]) {
          ++x;
          continue;
        }
        int e = x;
        while (e < labels.cols && l[e] == l[x]) ++e;
        runs_.push_back({x, e, l[x]});
        x = e;
      }
      row_begin_[y + 1] = static_cast<uint32_t>(runs_.size());
    }
    runs_.shrink_to_fit();
  }
  /// The label at (x, y) of the core (0 = none).
  uint16_t at(int y, int x) const {
    const Run* b = runs_.data() + row_begin_[y];
    const Run* e = runs_.data() + row_begin_[y + 1];
    const Run* it = std::upper_bound(b, e, x, [](int v, const Run& r) { return v < r.x0; });
    return it != b && x < (it - 1)->x1 ? (it - 1)->value : 0;
  }
  /// Calls f(x, label) for every labelled pixel of row y with x in [x0, x1).
  template <class F>
  void for_row(int y, int x0, int x1, F&& f) const {
    for (uint32_t k = row_begin_[y]; k < row_begin_[y + 1]; ++k) {
      const Run& r = runs_[k];
      for (int x = std::max(x0, r.x0); x < std::min(x1, r.x1); ++x) f(x, r.value);
    }
  }

 private:
  struct Run {
    int x0, x1;
    uint16_t value;
  };
  std::vector<uint32_t> row_begin_;
  std::vector<Run> runs_;
};

// Bounded cache of tile labels (read from tiles/t<i>.png, core size).
class LabelCache {
 public:
  LabelCache(std::string out_dir, size_t capacity) : out_dir_(std::move(out_dir)), capacity_(capacity) {}
  const TileLabels& get(int index) {
    auto it = map_.find(index);
    if (it != map_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
    const std::string path = tile_stem(out_dir_, index) + ".png";
    const cv::Mat m = cv::imread(path, cv::IMREAD_UNCHANGED);
    NEPHRO_CHECK(!m.empty() && m.type() == CV_16UC1, "tile labels '", path, "' are missing or corrupt");
    if (map_.size() >= capacity_) {
      map_.erase(order_.back());
      order_.pop_back();
    }
    order_.push_front(index);
    return map_.emplace(index, std::make_pair(TileLabels(m), order_.begin())).first->second.first;
  }

 private:
  std::string out_dir_;
  size_t capacity_;
  std::list<int> order_;
  std::unordered_map<int, std::pair<TileLabels, std::list<int>::iterator>> map_;
};

struct UnionFind {
  std::vector<int> parent;
  int find(int a) {
    while (parent[a] != a) a = parent[a] = parent[parent[a]];
    return a;
  }
  void join(int a, int b) {
    a = find(a);
    b = find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);  // root = earliest node
  }
};

std::string fmt(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// µm per level-0 pixel, the work resolution, and where they came from.
struct Resolution {
  double mpp0 = 0, work_mpp = 0, scale = 1;  // scale: level-0 pixels per work pixel
  std::string source;
};

Resolution choose_resolution(const SlideInfo& info, const SlideRunOptions& o) {
  Resolution r;
  const int given = (o.mpp > 0) + (o.magnification > 0) + (o.level >= 0);
  NEPHRO_CHECK(given <= 1, "give at most one of --mpp, --magnification and --level");
  NEPHRO_CHECK(std::isfinite(o.mpp) && std::isfinite(o.magnification) && o.mpp >= 0 && o.magnification >= 0,
               "--mpp and --magnification must be positive, finite numbers (got ", o.mpp, " and ", o.magnification,
               ")");
  NEPHRO_CHECK(o.level < static_cast<int>(info.levels.size()), "--level ", o.level, " out of range: slide '",
               info.path, "' has ", info.levels.size(), " level(s) (0..", info.levels.size() - 1, ")");
  r.mpp0 = info.mpp_x > 0 ? info.mpp_x : 0.0;
  if (r.mpp0 <= 0) {
    NEPHRO_CHECK(o.mpp > 0, "slide '", info.path,
                 "': no pixel size (µm/px) recorded in the file; pass --mpp with the level-0 pixel size");
    r.mpp0 = o.mpp;
    r.work_mpp = o.mpp;
    r.source = "--mpp (the file records none; taken as level 0's)";
  } else if (o.mpp > 0) {
    r.work_mpp = o.mpp;
    r.source = "--mpp";
  } else if (o.magnification > 0) {
    r.work_mpp = info.objective_power > 0 ? r.mpp0 * info.objective_power / o.magnification : 10.0 / o.magnification;
    r.source = info.objective_power > 0 ? "--magnification (objective power of the file)"
                                        : "--magnification (10 µm/px divided by it)";
  } else if (o.level >= 0) {
    r.work_mpp = r.mpp0 * info.levels[o.level].downsample;
    r.source = "--level";
  } else {
    r.work_mpp = r.mpp0;
    r.source = "level 0";
  }
  r.scale = r.work_mpp / r.mpp0;
  return r;
}

// ---- Plan ----------------------------------------------------------------------------

void check_area_filter(const ObjectFilter& f) {
  NEPHRO_CHECK(std::isfinite(f.min_area_um2) && f.min_area_um2 >= 0 && std::isfinite(f.max_area_um2) &&
                   f.max_area_um2 > f.min_area_um2,
               "--min-area / --max-area: need 0 <= min < max, finite (got ", f.min_area_um2, " and ", f.max_area_um2,
               " µm²)");
}

// The slide in work pixels: its level-0 size, its work size and the processed area.
struct WorkGrid {
  int64_t w0 = 0, h0 = 0;
  cv::Size work_size;
  cv::Rect area;  // the ROI (or the whole slide), work pixels
};

WorkGrid work_grid(const SlideInfo& info, const Resolution& res, const SlideRunOptions& o) {
  WorkGrid g;
  g.w0 = info.levels[0].width;
  g.h0 = info.levels[0].height;
  g.work_size = cv::Size(static_cast<int>(std::ceil(g.w0 / res.scale - 1e-9)),
                         static_cast<int>(std::ceil(g.h0 / res.scale - 1e-9)));
  g.area = cv::Rect(0, 0, g.work_size.width, g.work_size.height);
  if (o.has_roi) {
    const cv::Rect slide0(0, 0, static_cast<int>(g.w0), static_cast<int>(g.h0));
    NEPHRO_CHECK(o.roi.width > 0 && o.roi.height > 0 && (o.roi & slide0) == o.roi, "--roi ", o.roi.x, ",", o.roi.y,
                 ",", o.roi.width, ",", o.roi.height, " lies outside the slide (level 0 is ", g.w0, " x ", g.h0, ")");
    const int x0 = static_cast<int>(std::floor(o.roi.x / res.scale)), y0 = static_cast<int>(std::floor(o.roi.y / res.scale));
    const int x1 = static_cast<int>(std::ceil((o.roi.x + o.roi.width) / res.scale));
    const int y1 = static_cast<int>(std::ceil((o.roi.y + o.roi.height) / res.scale));
    g.area = cv::Rect(x0, y0, x1 - x0, y1 - y0) & g.area;
  }
  return g;
}

// Thumbnail, channel map, tissue (restricted to the area) and the tile plan.
struct TissuePlan {
  Thumbnail thumb;
  ChannelMap chmap;
  cv::Mat thumb_rgb, signal, tissue;
  bool brightfield = true;
  double work_to_thumb = 1;
  TilePlan plan;
};

TissuePlan plan_tissue(SlideReader& reader, const Resolution& res, const WorkGrid& g, const SlideRunOptions& o) {
  TissuePlan p;
  p.thumb = read_thumbnail(reader, o.thumbnail_side);
  p.chmap = make_channel_map(p.thumb, o.channels);
  p.thumb_rgb = p.chmap.apply(p.thumb.raw);
  p.brightfield = reader.info().brightfield() && o.channels.channels.empty();
  p.signal = foreground_signal(p.thumb_rgb, p.brightfield);
  p.tissue = detect_tissue(p.signal, p.thumb.scale_l0, res.mpp0, o.tissue);
  p.work_to_thumb = res.scale / p.thumb.scale_l0;
  {  // restrict the tissue mask to the ROI
    const cv::Rect& area = g.area;
    cv::Mat roi_mask = cv::Mat::zeros(p.tissue.size(), CV_8U);
    const int x0 = static_cast<int>(std::floor(area.x * p.work_to_thumb));
    const int y0 = static_cast<int>(std::floor(area.y * p.work_to_thumb));
    const int x1 = static_cast<int>(std::ceil((area.x + area.width) * p.work_to_thumb));
    const int y1 = static_cast<int>(std::ceil((area.y + area.height) * p.work_to_thumb));
    roi_mask(cv::Rect(x0, y0, x1 - x0, y1 - y0) & cv::Rect(0, 0, p.tissue.cols, p.tissue.rows)).setTo(255);
    p.tissue &= roi_mask;
  }
  p.plan = plan_tiles(g.work_size, g.area, o.tile, o.halo, p.tissue, p.work_to_thumb);
  return p;
}

SlideContext segmenter_context(const TissuePlan& p, const Resolution& res) {
  SlideContext ctx;
  ctx.thumb_signal = p.signal;
  ctx.tissue = p.tissue;
  ctx.work_to_thumb = p.work_to_thumb;
  ctx.work_mpp = res.work_mpp;
  ctx.brightfield = p.brightfield;
  return ctx;
}

// The resume key: everything the tile records depend on.
json resume_key(const std::string& slide_path, const WorkGrid& g, const Resolution& res, const TissuePlan& p,
                const TileSegmenter& segmenter, const SlideRunOptions& o) {
  const ChannelMap& chmap = p.chmap;
  json key;
  key["slide"] = fs::path(slide_path).filename().string();
  key["slide_bytes"] = fs::file_size(slide_path);
  key["level0"] = {g.w0, g.h0};
  key["work_mpp"] = res.work_mpp;
  key["area"] = {g.area.x, g.area.y, g.area.width, g.area.height};
  key["tile"] = o.tile;
  key["halo"] = o.halo;
  key["channels"] = {{chmap.src[0], chmap.lo[0], chmap.hi[0]},
                     {chmap.src[1], chmap.lo[1], chmap.hi[1]},
                     {chmap.src[2], chmap.lo[2], chmap.hi[2]}};
  key["tissue"] = {tissue_mode_names().name(o.tissue.mode), o.tissue.min_speck_um2, o.tissue.smooth_um};
  key["segmenter"] = segmenter.name();
  key["segmenter_config"] = json::parse(segmenter.config_json());
  key["min_area_um2"] = o.filter.min_area_um2;
  key["max_area_um2"] = o.filter.max_area_um2;
  return key;
}

// Clears stale temporaries, then writes tiles/plan.json or checks that the one there
// (of an earlier run into the same folder) is the same.
void prepare_out_dir(const std::string& out_dir, const std::string& key_text) {
  const std::string key_path = (fs::path(out_dir) / "tiles" / "plan.json").string();
  // Temporaries (.tmp-<pid>-...) of an earlier run killed mid-write: the tiles and the
  // final outputs are written into these two folders only.
  remove_stale_temporaries(out_dir);
  remove_stale_temporaries((fs::path(out_dir) / "tiles").string());
  if (fs::exists(key_path)) {
    std::ifstream in(key_path);
    const std::string old((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    NEPHRO_CHECK(old == key_text, "--out '", out_dir,
                 "' holds tiles of a run with other options or another slide (", key_path,
                 "); use a new --out folder or delete it");
  } else {
    write_file_atomically(key_path, key_text);
  }
}

// ---- Tiles ---------------------------------------------------------------------------

// Object area limits in work pixels.
struct AreaLimits {
  double min_px = 0, max_px = 0;
};

// The components of one tile's core, with the core's labels renumbered to them.
struct TileComponents {
  std::vector<Component> comps;
  cv::Mat local;  // CV_16U, core size: 1..comps.size(), 0 = none
};

TileComponents core_components(const Tile& t, const TilePlan& plan, const TileMask& tm, const AreaLimits& lim) {
  const cv::Rect core_in_read = t.core - t.read.tl();
  cv::Mat core = tm.mask(core_in_read);
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(core, labels, stats, centroids, 8, CV_32S);
  // A component not touching a core side shared with another grid tile is whole:
  // filter it by area now. Others wait for stitching.
  const bool open_l = t.col > 0, open_r = t.col + 1 < plan.cols, open_t = t.row > 0, open_b = t.row + 1 < plan.rows;
  std::vector<int> remap(n, 0);
  TileComponents tc;
  std::vector<Component>& comps = tc.comps;
  for (int i = 1; i < n; ++i) {
    const int x = stats.at<int>(i, cv::CC_STAT_LEFT), y = stats.at<int>(i, cv::CC_STAT_TOP);
    const int w = stats.at<int>(i, cv::CC_STAT_WIDTH), h = stats.at<int>(i, cv::CC_STAT_HEIGHT);
    const int a = stats.at<int>(i, cv::CC_STAT_AREA);
    const bool cut = (open_l && x == 0) || (open_t && y == 0) || (open_r && x + w == core.cols) ||
                     (open_b && y + h == core.rows);
    if (!cut && (a < lim.min_px || a > lim.max_px)) continue;
    remap[i] = static_cast<int>(comps.size()) + 1;
    Component c;
    c.area = a;
    c.x0 = t.core.x + x;
    c.y0 = t.core.y + y;
    c.x1 = c.x0 + w - 1;
    c.y1 = c.y0 + h - 1;
    comps.push_back(c);
  }
  NEPHRO_CHECK(comps.size() <= 65535, "tile ", t.index, " has more than 65535 objects");
  tc.local = cv::Mat::zeros(core.size(), CV_16U);
  for (int y = 0; y < core.rows; ++y) {
    const int* l = labels.ptr<int>(y);
    uint16_t* out = tc.local.ptr<uint16_t>(y);
    const float* s = tm.score.empty() ? nullptr : tm.score.ptr<float>(y + core_in_read.y) + core_in_read.x;
    for (int x = 0; x < core.cols; ++x) {
      const int k = remap[l[x]];
      if (!k) continue;
      out[x] = static_cast<uint16_t>(k);
      Component& c = comps[k - 1];
      c.sum_x += t.core.x + x;
      c.sum_y += t.core.y + y;
      c.score_sum += s ? s[x] : 1.0;
    }
  }
  return tc;
}

// tiles/t<i>.png (the core labels, when there is any component) and tiles/t<i>.json
// (components and edge labels; written last, it marks the tile done).
void write_tile_record(const std::string& stem, const Tile& t, const TileComponents& tc) {
  const cv::Mat& local = tc.local;
  json rec;
  rec["tile"] = {t.index, t.row, t.col};
  rec["core"] = {t.core.x, t.core.y, t.core.width, t.core.height};
  json cj = json::array();
  for (const auto& c : tc.comps) cj.push_back({c.area, c.sum_x, c.sum_y, c.score_sum, c.x0, c.y0, c.x1, c.y1});
  rec["components"] = cj;
  auto row = [&](int y) { return std::vector<int>(local.ptr<uint16_t>(y), local.ptr<uint16_t>(y) + local.cols); };
  auto col = [&](int x) {
    std::vector<int> v(local.rows);
    for (int y = 0; y < local.rows; ++y) v[y] = local.at<uint16_t>(y, x);
    return v;
  };
  rec["top"] = rle(row(0));
  rec["bottom"] = rle(row(local.rows - 1));
  rec["left"] = rle(col(0));
  rec["right"] = rle(col(local.cols - 1));
  if (!tc.comps.empty()) {
    std::vector<uchar> png;
    NEPHRO_CHECK(cv::imencode(".png", local, png), "cannot encode tile labels");
    write_file_atomically(stem + ".png", std::string(png.begin(), png.end()));
  }
  write_file_atomically(stem + ".json", rec.dump());  // last: marks the tile done
}

// Segments every planned tile that has no record yet. Returns false when it stopped
// early (o.stop_after_tiles).
bool run_tiles(SlideReader& reader, TileSegmenter& segmenter, const TissuePlan& p, const Resolution& res,
               const std::string& out_dir, const SlideRunOptions& o, SlideRunResult& result) {
  const AreaLimits lim{o.filter.min_area_um2 / (res.work_mpp * res.work_mpp),
                       o.filter.max_area_um2 / (res.work_mpp * res.work_mpp)};
  int done = 0;
  for (const Tile& t : p.plan.tiles) {
    const std::string stem = tile_stem(out_dir, t.index);
    if (fs::exists(stem + ".json")) {
      ++result.tiles_resumed;
      ++done;
      if (o.progress) o.progress(done, result.tiles_total);
      continue;
    }
    if (o.stop_after_tiles >= 0 && result.tiles_processed >= o.stop_after_tiles) return false;
    const cv::Rect2d rect_l0(t.read.x * res.scale, t.read.y * res.scale, t.read.width * res.scale,
                             t.read.height * res.scale);
    const cv::Mat raw = read_resampled(reader, rect_l0, t.read.size());
    const TileMask tm = segmenter.segment(p.chmap.apply(raw), t.read.tl());
    NEPHRO_CHECK(tm.mask.size() == t.read.size() && tm.mask.type() == CV_8UC1,
                 "segmenter '", segmenter.name(), "' returned a mask of the wrong size or type");
    write_tile_record(stem, t, core_components(t, p.plan, tm, lim));
    ++result.tiles_processed;
    ++done;
    if (o.progress) o.progress(done, result.tiles_total);
  }
  return true;
}

// ---- Stitching -----------------------------------------------------------------------

// Union-find over (tile, component) nodes across core edges and corners, and the
// aggregated component of every root.
struct Stitch {
  std::vector<TileRecord> records;
  std::vector<int> offset;  // first node of each grid tile
  UnionFind uf;
  std::vector<Component> agg;               // per root node
  std::vector<std::vector<int>> root_tiles;  // per root node: its tiles, ascending
  std::vector<int> roots;
  int node(int tile, int label) const { return offset[tile] + label - 1; }
};

// a[i] of tile ta touches b[i-1..i+1] of tile tb (8-adjacency across a straight edge).
void join_edges(Stitch& st, int ta, const std::vector<int>& a, int tb, const std::vector<int>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i]) continue;
    for (int d = -1; d <= 1; ++d) {
      const long j = static_cast<long>(i) + d;
      if (j >= 0 && j < static_cast<long>(b.size()) && b[j]) st.uf.join(st.node(ta, a[i]), st.node(tb, b[j]));
    }
  }
}

void join_neighbours(Stitch& st, const TilePlan& plan) {
  const auto& records = st.records;
  for (int r = 0; r < plan.rows; ++r)
    for (int c = 0; c < plan.cols; ++c) {
      const int i = r * plan.cols + c;
      const TileRecord& a = records[i];
      if (!a.present || a.components.empty()) continue;
      if (c + 1 < plan.cols && records[i + 1].present) join_edges(st, i, a.right, i + 1, records[i + 1].left);
      if (r + 1 < plan.rows) {
        const int below = i + plan.cols;
        if (records[below].present) join_edges(st, i, a.bottom, below, records[below].top);
        if (c + 1 < plan.cols && records[below + 1].present && a.bottom.back() && records[below + 1].top.front())
          st.uf.join(st.node(i, a.bottom.back()), st.node(below + 1, records[below + 1].top.front()));
        if (c > 0 && records[below - 1].present && a.bottom.front() && records[below - 1].top.back())
          st.uf.join(st.node(i, a.bottom.front()), st.node(below - 1, records[below - 1].top.back()));
      }
    }
}

// Aggregate per root (nodes are in raster tile order; the root is the earliest node).
void aggregate_roots(Stitch& st, int grid_tiles) {
  const int num_nodes = st.offset.back();
  st.agg.assign(num_nodes, Component());
  st.root_tiles.assign(num_nodes, {});
  for (int ti = 0; ti < grid_tiles; ++ti)
    for (size_t k = 0; k < st.records[ti].components.size(); ++k) {
      const Component& c = st.records[ti].components[k];
      const int root = st.uf.find(st.offset[ti] + static_cast<int>(k));
      Component& g = st.agg[root];
      if (g.area == 0) {
        g.x0 = c.x0;
        g.y0 = c.y0;
        g.x1 = c.x1;
        g.y1 = c.y1;
      }
      g.area += c.area;
      g.sum_x += c.sum_x;
      g.sum_y += c.sum_y;
      g.score_sum += c.score_sum;
      g.x0 = std::min(g.x0, c.x0);
      g.y0 = std::min(g.y0, c.y0);
      g.x1 = std::max(g.x1, c.x1);
      g.y1 = std::max(g.y1, c.y1);
      if (st.root_tiles[root].empty() || st.root_tiles[root].back() != ti) st.root_tiles[root].push_back(ti);
    }
  for (int i = 0; i < num_nodes; ++i)
    if (st.uf.find(i) == i) st.roots.push_back(i);
}

Stitch stitch_tiles(const std::string& out_dir, const TilePlan& plan) {
  Stitch st;
  st.records.resize(plan.grid_tiles());
  st.offset.assign(plan.grid_tiles() + 1, 0);
  for (const Tile& t : plan.tiles) st.records[t.index] = load_record(tile_stem(out_dir, t.index) + ".json");
  for (int i = 0; i < plan.grid_tiles(); ++i)
    st.offset[i + 1] = st.offset[i] + static_cast<int>(st.records[i].components.size());
  st.uf.parent.resize(st.offset.back());
  std::iota(st.uf.parent.begin(), st.uf.parent.end(), 0);
  join_neighbours(st, plan);
  aggregate_roots(st, plan.grid_tiles());
  return st;
}

// The core of grid tile ti (work pixels).
cv::Rect core_of(int ti, const TilePlan& plan, const cv::Rect& area, int stride) {
  const int r = ti / plan.cols, c = ti % plan.cols;
  return cv::Rect(area.x + c * stride, area.y + r * stride, stride, stride) & area;
}

// The mask of one stitched object over its bbox (work pixels).
std::pair<cv::Rect, cv::Mat> object_mask(Stitch& st, int root, const TilePlan& plan, const cv::Rect& area,
                                         int stride, LabelCache& cache) {
  const Component& g = st.agg[root];
  const cv::Rect box(g.x0, g.y0, g.x1 - g.x0 + 1, g.y1 - g.y0 + 1);
  cv::Mat mask = cv::Mat::zeros(box.size(), CV_8U);
  for (int ti : st.root_tiles[root]) {
    const cv::Rect core = core_of(ti, plan, area, stride);
    const cv::Rect part = core & box;
    if (part.empty()) continue;
    const TileLabels& lab = cache.get(ti);
    for (int y = part.y; y < part.y + part.height; ++y) {
      uint8_t* m = mask.ptr<uint8_t>(y - box.y);
      lab.for_row(y - core.y, part.x - core.x, part.x + part.width - core.x, [&](int x, uint16_t v) {
        if (st.uf.find(st.node(ti, v)) == root) m[x + core.x - box.x] = 255;
      });
    }
  }
  return std::make_pair(box, mask);
}

struct Shape {
  double perimeter_px = 0, solidity = 0, circularity = 0;
};

Shape shape_of(const cv::Mat& mask) {
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(mask.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
  Shape s;
  std::vector<cv::Point> all;
  for (const auto& c : contours) {
    s.perimeter_px += cv::arcLength(c, /*closed=*/true);
    all.insert(all.end(), c.begin(), c.end());
  }
  const double area = cv::countNonZero(mask);
  std::vector<cv::Point> hull;
  if (!all.empty()) cv::convexHull(all, hull);
  // Hull of pixel centres misses half a pixel all round: add the perimeter / 2 + 1.
  const double hull_area = hull.size() >= 3 ? cv::contourArea(hull) + cv::arcLength(hull, true) / 2.0 + 1.0 : area;
  s.solidity = hull_area > 0 ? std::min(1.0, area / hull_area) : 0.0;
  s.circularity = s.perimeter_px > 0 ? std::min(1.0, 4.0 * M_PI * area / (s.perimeter_px * s.perimeter_px)) : 0.0;
  return s;
}

// The stitched objects that pass the size and shape filters, numbered 1.. in root order.
struct Selection {
  std::vector<int> kept;  // root nodes
  std::vector<Shape> shapes;
  std::unordered_map<int, uint32_t> final_id;  // root -> 1-based object id
};

Selection select_objects(Stitch& st, const TilePlan& plan, const cv::Rect& area, int stride, LabelCache& cache,
                         const AreaLimits& lim, const ObjectFilter& f) {
  Selection sel;
  const double max_extent = 4.0 * std::sqrt(lim.max_px);
  for (int root : st.roots) {
    const Component& g = st.agg[root];
    if (g.area < lim.min_px || g.area > lim.max_px) continue;
    if (g.x1 - g.x0 + 1 > max_extent || g.y1 - g.y0 + 1 > max_extent) continue;
    const Shape s = shape_of(object_mask(st, root, plan, area, stride, cache).second);
    if (s.solidity < f.min_solidity || s.circularity < f.min_circularity) continue;
    sel.kept.push_back(root);
    sel.shapes.push_back(s);
  }
  for (size_t i = 0; i < sel.kept.size(); ++i) sel.final_id[sel.kept[i]] = static_cast<uint32_t>(i + 1);
  return sel;
}

// ---- Outputs -------------------------------------------------------------------------

// The picture: the thumbnail at most 1024 px on its longest side, with the processed
// tile cores drawn thin and light (the outlines go on top later).
struct Overlay {
  cv::Mat image;
  double l0_to_overlay = 1;  // overlay px per level-0 px
};

Overlay make_overlay(const TissuePlan& p, const Resolution& res) {
  const cv::Mat& thumb_rgb = p.thumb_rgb;
  Overlay ov;
  ov.image = thumb_rgb;
  const double overlay_scale = std::min(1.0, 1024.0 / std::max(thumb_rgb.cols, thumb_rgb.rows));
  if (overlay_scale < 1.0)
    cv::resize(thumb_rgb, ov.image, cv::Size(std::max(1, static_cast<int>(std::lround(thumb_rgb.cols * overlay_scale))),
                                             std::max(1, static_cast<int>(std::lround(thumb_rgb.rows * overlay_scale)))),
               0, 0, cv::INTER_AREA);
  else
    ov.image = thumb_rgb.clone();
  ov.l0_to_overlay = overlay_scale / p.thumb.scale_l0;
  for (const Tile& t : p.plan.tiles) {  // the processed tile cores, thin and light
    const double k = ov.l0_to_overlay * res.scale;
    cv::rectangle(ov.image,
                  cv::Rect(cv::Point(static_cast<int>(std::lround(t.core.x * k)), static_cast<int>(std::lround(t.core.y * k))),
                           cv::Point(static_cast<int>(std::lround((t.core.x + t.core.width) * k)) - 1,
                                     static_cast<int>(std::lround((t.core.y + t.core.height) * k)) - 1)),
                  cv::Scalar(120, 170, 230), /*thickness=*/1, cv::LINE_8);
  }
  return ov;
}

SlideObject object_of(const Component& g, const cv::Rect& box, const Shape& shape, int id, const Resolution& res) {
  const double um2 = res.work_mpp * res.work_mpp;
  SlideObject obj;
  obj.id = id;
  obj.centroid_x = (g.sum_x / g.area + 0.5) * res.scale;
  obj.centroid_y = (g.sum_y / g.area + 0.5) * res.scale;
  obj.area_um2 = g.area * um2;
  obj.perimeter_um = shape.perimeter_px * res.work_mpp;
  obj.equivalent_diameter_um = 2.0 * std::sqrt(obj.area_um2 / M_PI);
  obj.solidity = shape.solidity;
  obj.score = g.score_sum / g.area;
  obj.bbox_l0 = cv::Rect(static_cast<int>(std::floor(box.x * res.scale)), static_cast<int>(std::floor(box.y * res.scale)),
                         static_cast<int>(std::ceil(box.width * res.scale)),
                         static_cast<int>(std::ceil(box.height * res.scale)));
  return obj;
}

json object_measurements(const SlideObject& obj, const Shape& shape, const Resolution& res) {
  json meas;
  meas["Area µm^2"] = obj.area_um2;
  meas["Perimeter µm"] = obj.perimeter_um;
  meas["Equivalent diameter µm"] = obj.equivalent_diameter_um;
  meas["Solidity"] = obj.solidity;
  meas["Circularity"] = shape.circularity;
  meas["Score"] = obj.score;
  meas["Centroid X µm"] = obj.centroid_x * res.mpp0;
  meas["Centroid Y µm"] = obj.centroid_y * res.mpp0;
  return meas;
}

// Intensities of the stored samples at the work resolution under the object's mask:
// mean, median and max per channel, added to meas; returns the same as TSV columns.
std::string add_intensities(json& meas, SlideReader& reader, const cv::Rect& box, const cv::Mat& mask,
                            int64_t area_px, const Resolution& res) {
  const SlideInfo& info = reader.info();
  const cv::Mat raw = read_resampled(
      reader, cv::Rect2d(box.x * res.scale, box.y * res.scale, box.width * res.scale, box.height * res.scale),
      box.size());
  std::vector<cv::Mat> planes;
  cv::split(raw, planes);
  std::string intensity_cols;
  for (size_t c = 0; c < planes.size(); ++c) {
    cv::Mat v;
    planes[c].convertTo(v, CV_32F);
    std::vector<float> vals;
    vals.reserve(static_cast<size_t>(area_px));
    for (int y = 0; y < mask.rows; ++y)
      for (int x = 0; x < mask.cols; ++x)
        if (mask.at<uint8_t>(y, x)) vals.push_back(v.at<float>(y, x));
    double mean = 0, mx = 0, median = 0;
    if (!vals.empty()) {
      for (float f : vals) mean += f;
      mean /= vals.size();
      mx = *std::max_element(vals.begin(), vals.end());
      std::sort(vals.begin(), vals.end());
      const size_t n = vals.size();
      median = n % 2 ? vals[n / 2] : 0.5 * (vals[n / 2 - 1] + vals[n / 2]);
    }
    const std::string& cname = c < info.channel_names.size() ? info.channel_names[c] : "Channel " + std::to_string(c);
    meas[cname + ": Mean"] = mean;
    meas[cname + ": Median"] = median;
    meas[cname + ": Max"] = mx;
    intensity_cols += "\t" + fmt(mean) + "\t" + fmt(median) + "\t" + fmt(mx);
  }
  return intensity_cols;
}

// Outline: pixel-edge polygons (holes kept), in level-0 pixels, as GeoJSON polygon
// coordinates. Draws each outer ring onto the overlay.
json outline_polygons(const cv::Mat& mask, const cv::Rect& box, int id, const Resolution& res, Overlay& overlay,
                      const SlideRunOptions& o) {
  cv::Mat lab = cv::Mat::zeros(mask.size(), CV_32S);
  lab.setTo(id, mask);
  std::vector<io::PolygonObject> traced = io::trace_objects(lab);
  json polys = json::array();
  for (const auto& t : traced)
    for (const auto& poly : t.polygons) {
      json rings = json::array();
      for (size_t ri = 0; ri < poly.size(); ++ri) {
        json ring = json::array();
        std::vector<cv::Point> thumb_pts;
        for (const auto& p : poly[ri]) {
          const double x = (p.x + box.x) * res.scale, y = (p.y + box.y) * res.scale;
          ring.push_back({x, y});
          if (ri == 0) thumb_pts.emplace_back(static_cast<int>(std::lround(x * overlay.l0_to_overlay)),
                                              static_cast<int>(std::lround(y * overlay.l0_to_overlay)));
        }
        if (!poly[ri].empty()) ring.push_back(ring.front());  // GeoJSON rings are closed
        rings.push_back(ring);
        if (ri == 0 && !thumb_pts.empty())
          cv::polylines(overlay.image, std::vector<std::vector<cv::Point>>{thumb_pts}, /*isClosed=*/true,
                        cv::Scalar(o.color.r, o.color.g, o.color.b), /*thickness=*/2, cv::LINE_8);
      }
      polys.push_back(rings);
    }
  return polys;
}

json object_feature(int id, const json& polys, const json& meas, const SlideRunOptions& o) {
  json feature;
  feature["type"] = "Feature";
  feature["id"] = id;
  if (polys.size() == 1) feature["geometry"] = {{"type", "Polygon"}, {"coordinates", polys[0]}};
  else feature["geometry"] = {{"type", "MultiPolygon"}, {"coordinates", polys}};
  feature["properties"] = {{"objectType", object_type_names().name(o.object_type)},
                           {"name", "Glomerulus " + std::to_string(id)},
                           {"classification", {{"name", o.class_name}, {"color", {o.color.r, o.color.g, o.color.b}}}},
                           {"isLocked", false},
                           {"measurements", meas}};
  return feature;
}

void write_tsv_header(std::ostream& tsv, const SlideInfo& info) {
  tsv << "Image\tObject ID\tObject type\tClassification\tCentroid X µm\tCentroid Y µm\tArea µm^2\tPerimeter µm"
      << "\tCentroid X px\tCentroid Y px\tEquivalent diameter µm\tSolidity\tCircularity\tScore";
  for (const auto& name : info.channel_names) tsv << "\t" << name << ": Mean\t" << name << ": Median\t" << name << ": Max";
  tsv << "\n";
}

void write_tsv_row(std::ostream& tsv, const std::string& image_name, const SlideObject& obj, const Shape& shape,
                   const std::string& intensity_cols, const Resolution& res, const SlideRunOptions& o) {
  const std::string type_title = o.object_type == ObjectType::kAnnotation ? "Annotation" : "Detection";
  tsv << image_name << "\t" << obj.id << "\t" << type_title << "\t" << o.class_name << "\t"
      << fmt(obj.centroid_x * res.mpp0) << "\t" << fmt(obj.centroid_y * res.mpp0) << "\t" << fmt(obj.area_um2) << "\t"
      << fmt(obj.perimeter_um) << "\t" << fmt(obj.centroid_x, 2) << "\t" << fmt(obj.centroid_y, 2) << "\t"
      << fmt(obj.equivalent_diameter_um) << "\t" << fmt(obj.solidity) << "\t" << fmt(shape.circularity) << "\t"
      << fmt(obj.score) << intensity_cols << "\n";
}

// Where the stitched objects' pixels are read back from.
struct ObjectSource {
  Stitch& st;
  const TilePlan& plan;
  cv::Rect area;
  int stride = 0;
  LabelCache& cache;
  std::pair<cv::Rect, cv::Mat> mask_of(int root) { return object_mask(st, root, plan, area, stride, cache); }
};

// objects.geojson and objects.tsv (written together, atomically), one row per kept
// object; fills result.objects and draws the outlines onto the overlay.
void write_objects(const std::string& out_dir, const std::string& image_name, SlideReader& reader, ObjectSource& src,
                   const Selection& sel, const Resolution& res, const SlideRunOptions& o, Overlay& overlay,
                   SlideRunResult& result) {
  const SlideInfo& info = reader.info();
  const std::string geojson_path = (fs::path(out_dir) / "objects.geojson").string();
  const std::string tsv_path = (fs::path(out_dir) / "objects.tsv").string();
  write_atomically(geojson_path, [&](const std::string& gtmp) {
    write_atomically(tsv_path, [&](const std::string& ttmp) {
      std::ofstream gj(gtmp, std::ios::binary), tsv(ttmp, std::ios::binary);
      NEPHRO_CHECK(gj.good() && tsv.good(), "cannot write into '", out_dir, "'");
      gj << "{\"type\":\"FeatureCollection\",\"features\":[";
      write_tsv_header(tsv, info);
      for (size_t i = 0; i < sel.kept.size(); ++i) {
        const int root = sel.kept[i];
        const Component& g = src.st.agg[root];
        const auto [box, mask] = src.mask_of(root);
        const int id = static_cast<int>(i + 1);
        const SlideObject obj = object_of(g, box, sel.shapes[i], id, res);
        json meas = object_measurements(obj, sel.shapes[i], res);
        const std::string intensity_cols = add_intensities(meas, reader, box, mask, g.area, res);
        const json polys = outline_polygons(mask, box, id, res, overlay, o);
        gj << (i ? ",\n" : "\n") << object_feature(id, polys, meas, o).dump();
        write_tsv_row(tsv, image_name, obj, sel.shapes[i], intensity_cols, res, o);
        result.objects.push_back(obj);
      }
      gj << "\n]}\n";
      gj.close();
      tsv.close();
      NEPHRO_CHECK(gj.good() && tsv.good(), "error while writing into '", out_dir, "' (disk full?)");
    });
  });
}

// Labels at level 0 rather than on the work grid (only when they differ).
bool labels_at_level0(const SlideRunOptions& o, const Resolution& res) {
  return o.labels_at_level0 && std::abs(res.scale - 1.0) > 1e-12;
}

// Label pyramid: the instance id of every work pixel, read back from the tiles.
LabelPyramidSpec write_labels(const std::string& out_dir, const std::string& image_name, ObjectSource& src,
                              const Selection& sel, const WorkGrid& g, const Resolution& res,
                              const SlideRunOptions& o) {
  const TilePlan& plan = src.plan;
  const cv::Rect area = src.area;
  const int stride = src.stride;
  // Per tile: local label -> final id (0 = filtered out).
  std::vector<std::vector<uint32_t>> local_to_final(plan.grid_tiles());
  for (int ti = 0; ti < plan.grid_tiles(); ++ti) {
    auto& m = local_to_final[ti];
    m.assign(src.st.records[ti].components.size() + 1, 0u);
    for (size_t k = 0; k < src.st.records[ti].components.size(); ++k) {
      auto it = sel.final_id.find(src.st.uf.find(src.st.offset[ti] + static_cast<int>(k)));
      if (it != sel.final_id.end()) m[k + 1] = it->second;
    }
  }
  // The final id of work pixel (x, y) (0 outside the area or for filtered objects).
  int cached_tile = -1;
  const TileLabels* lab = nullptr;
  auto label_at = [&](int x, int y) -> uint32_t {
    if (y < area.y || y >= area.y + area.height || x < area.x || x >= area.x + area.width) return 0u;
    const int r = (y - area.y) / stride, c = (x - area.x) / stride;
    const int ti = r * plan.cols + c;
    if (local_to_final[ti].size() <= 1) return 0u;
    if (ti != cached_tile) {
      lab = &src.cache.get(ti);
      cached_tile = ti;
    }
    return local_to_final[ti][lab->at(y - (area.y + r * stride), x - (area.x + c * stride))];
  };
  // Rows of the work grid, or of level 0 (pixel centre (x + 0.5, y + 0.5) lies in work
  // pixel floor((x + 0.5) / scale)).
  const bool at_level0 = labels_at_level0(o, res);
  auto work_of = [&](int v) { return static_cast<int>(std::floor((v + 0.5) / res.scale)); };
  auto label_at_rows = [&](int y, int x0, int step, int count, uint32_t* out) {
    const int yw = at_level0 ? work_of(y) : y;
    for (int k = 0; k < count; ++k) {
      const int x = x0 + k * step;
      out[k] = label_at(at_level0 ? work_of(x) : x, yw);
    }
  };
  LabelPyramidSpec spec;
  spec.width = at_level0 ? static_cast<int>(g.w0) : g.work_size.width;
  spec.height = at_level0 ? static_cast<int>(g.h0) : g.work_size.height;
  spec.mpp = at_level0 ? res.mpp0 : res.work_mpp;
  spec.name = image_name;
  write_label_pyramid((fs::path(out_dir) / "labels.ome.tif").string(), spec, label_at_rows);
  return spec;
}

struct Timings {
  double thumb = 0, tiles = 0, stitch = 0, out = 0, total = 0;
};

// run.json: the slide, the resolution, the plan, the options, the counts and timings.
void write_run_json(const std::string& out_dir, const std::string& slide_path, const SlideInfo& info,
                    const Resolution& res, const WorkGrid& g, const TileSegmenter& segmenter,
                    const SlideRunOptions& o, const SlideRunResult& result, size_t num_objects,
                    const LabelPyramidSpec& spec, const Timings& t) {
  json run;
  run["slide"] = slide_path;
  run["reader"] = info.backend;
  run["vendor"] = info.vendor;
  json levels = json::array();
  for (const auto& l : info.levels) levels.push_back({{"width", l.width}, {"height", l.height}, {"downsample", l.downsample}});
  run["levels"] = levels;
  run["channels"] = info.channel_names;
  run["depth"] = info.depth;
  run["mpp_level0"] = res.mpp0;
  run["mpp_work"] = res.work_mpp;
  run["mpp_source"] = res.source;
  run["work_size"] = {g.work_size.width, g.work_size.height};
  run["area_work_px"] = {g.area.x, g.area.y, g.area.width, g.area.height};
  run["tile"] = o.tile;
  run["halo"] = o.halo;
  run["tiles"] = {{"grid", result.tiles_grid}, {"tissue", result.tiles_total}};
  run["tissue_mode"] = tissue_mode_names().name(o.tissue.mode);
  run["tissue_fraction"] = result.tissue_fraction;
  run["segmenter"] = segmenter.name();
  run["segmenter_config"] = json::parse(segmenter.config_json());
  run["filter"] = {{"min_area_um2", o.filter.min_area_um2}, {"max_area_um2", o.filter.max_area_um2},
                   {"min_solidity", o.filter.min_solidity}, {"min_circularity", o.filter.min_circularity}};
  run["object_type"] = object_type_names().name(o.object_type);
  run["counts"] = {{"components", result.components}, {"objects", static_cast<int>(num_objects)}};
  run["outputs"] = {"objects.geojson", "objects.tsv", "labels.ome.tif", "thumbnail.png"};
  run["labels"] = {{"resolution", labels_at_level0(o, res) || std::abs(res.scale - 1.0) <= 1e-12 ? "level0" : "work"},
                   {"width", spec.width},
                   {"height", spec.height},
                   {"mpp", spec.mpp}};
  run["timings_s"] = {{"thumbnail_tissue", t.thumb}, {"tiles", t.tiles}, {"tiles_processed_now", result.tiles_processed},
                      {"stitch", t.stitch}, {"outputs", t.out}, {"total", t.total}};
  write_file_atomically((fs::path(out_dir) / "run.json").string(), run.dump(2) + "\n");
}

}  // namespace

SlideRunResult run_slide(const std::string& slide_path, const std::string& out_dir, TileSegmenter& segmenter,
                         const SlideRunOptions& o) {
  const auto t_start = Clock::now();
  NEPHRO_CHECK(!out_dir.empty(), "--out is required");
  check_area_filter(o.filter);
  std::unique_ptr<SlideReader> reader = open_slide(slide_path);
  const SlideInfo& info = reader->info();
  const Resolution res = choose_resolution(info, o);
  const WorkGrid grid = work_grid(info, res, o);
  Timings timings;

  const auto t_thumb = Clock::now();
  const TissuePlan tp = plan_tissue(*reader, res, grid, o);
  const TilePlan& plan = tp.plan;
  segmenter.prepare(segmenter_context(tp, res));
  timings.thumb = seconds_since(t_thumb);

  SlideRunResult result;
  result.work_mpp = res.work_mpp;
  result.tiles_total = static_cast<int>(plan.tiles.size());
  result.tiles_grid = plan.grid_tiles();
  result.tissue_fraction = static_cast<double>(cv::countNonZero(tp.tissue)) / static_cast<double>(tp.tissue.total());
  prepare_out_dir(out_dir, resume_key(slide_path, grid, res, tp, segmenter, o).dump(2));

  const auto t_tiles = Clock::now();
  if (!run_tiles(*reader, segmenter, tp, res, out_dir, o, result)) return result;
  timings.tiles = seconds_since(t_tiles);

  const auto t_stitch = Clock::now();
  Stitch st = stitch_tiles(out_dir, plan);
  result.components = static_cast<int>(st.roots.size());
  LabelCache cache(out_dir, 64);
  ObjectSource src{st, plan, grid.area, plan.tile - 2 * plan.halo, cache};
  const AreaLimits lim{o.filter.min_area_um2 / (res.work_mpp * res.work_mpp),
                       o.filter.max_area_um2 / (res.work_mpp * res.work_mpp)};
  const Selection sel = select_objects(st, plan, src.area, src.stride, cache, lim, o.filter);
  timings.stitch = seconds_since(t_stitch);

  const auto t_out = Clock::now();
  const std::string image_name = fs::path(slide_path).filename().string();
  Overlay overlay = make_overlay(tp, res);
  write_objects(out_dir, image_name, *reader, src, sel, res, o, overlay, result);
  const LabelPyramidSpec spec = write_labels(out_dir, image_name, src, sel, grid, res, o);
  io::write_png((fs::path(out_dir) / "thumbnail.png").string(), overlay.image);
  timings.out = seconds_since(t_out);

  timings.total = seconds_since(t_start);
  write_run_json(out_dir, slide_path, info, res, grid, segmenter, o, result, sel.kept.size(), spec, timings);
  result.complete = true;
  return result;
}

}  // namespace nephroseg::slide

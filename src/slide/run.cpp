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

}  // namespace

SlideRunResult run_slide(const std::string& slide_path, const std::string& out_dir, TileSegmenter& segmenter,
                         const SlideRunOptions& o) {
  const auto t_start = Clock::now();
  NEPHRO_CHECK(!out_dir.empty(), "--out is required");
  NEPHRO_CHECK(std::isfinite(o.filter.min_area_um2) && o.filter.min_area_um2 >= 0 &&
                   std::isfinite(o.filter.max_area_um2) && o.filter.max_area_um2 > o.filter.min_area_um2,
               "--min-area / --max-area: need 0 <= min < max, finite (got ", o.filter.min_area_um2, " and ",
               o.filter.max_area_um2, " µm²)");
  std::unique_ptr<SlideReader> reader = open_slide(slide_path);
  const SlideInfo& info = reader->info();
  const Resolution res = choose_resolution(info, o);
  const int64_t w0 = info.levels[0].width, h0 = info.levels[0].height;
  const cv::Size work_size(static_cast<int>(std::ceil(w0 / res.scale - 1e-9)),
                           static_cast<int>(std::ceil(h0 / res.scale - 1e-9)));
  cv::Rect area(0, 0, work_size.width, work_size.height);
  if (o.has_roi) {
    const cv::Rect slide0(0, 0, static_cast<int>(w0), static_cast<int>(h0));
    NEPHRO_CHECK(o.roi.width > 0 && o.roi.height > 0 && (o.roi & slide0) == o.roi, "--roi ", o.roi.x, ",", o.roi.y,
                 ",", o.roi.width, ",", o.roi.height, " lies outside the slide (level 0 is ", w0, " x ", h0, ")");
    const int x0 = static_cast<int>(std::floor(o.roi.x / res.scale)), y0 = static_cast<int>(std::floor(o.roi.y / res.scale));
    const int x1 = static_cast<int>(std::ceil((o.roi.x + o.roi.width) / res.scale));
    const int y1 = static_cast<int>(std::ceil((o.roi.y + o.roi.height) / res.scale));
    area = cv::Rect(x0, y0, x1 - x0, y1 - y0) & area;
  }

  // Thumbnail, channel map, tissue, plan.
  const auto t_thumb = Clock::now();
  Thumbnail thumb = read_thumbnail(*reader, o.thumbnail_side);
  const ChannelMap chmap = make_channel_map(thumb, o.channels);
  const cv::Mat thumb_rgb = chmap.apply(thumb.raw);
  const bool brightfield = info.brightfield() && o.channels.channels.empty();
  const cv::Mat signal = foreground_signal(thumb_rgb, brightfield);
  cv::Mat tissue = detect_tissue(signal, thumb.scale_l0, res.mpp0, o.tissue);
  const double work_to_thumb = res.scale / thumb.scale_l0;
  {  // restrict the tissue mask to the ROI
    cv::Mat roi_mask = cv::Mat::zeros(tissue.size(), CV_8U);
    const int x0 = static_cast<int>(std::floor(area.x * work_to_thumb));
    const int y0 = static_cast<int>(std::floor(area.y * work_to_thumb));
    const int x1 = static_cast<int>(std::ceil((area.x + area.width) * work_to_thumb));
    const int y1 = static_cast<int>(std::ceil((area.y + area.height) * work_to_thumb));
    roi_mask(cv::Rect(x0, y0, x1 - x0, y1 - y0) & cv::Rect(0, 0, tissue.cols, tissue.rows)).setTo(255);
    tissue &= roi_mask;
  }
  const TilePlan plan = plan_tiles(work_size, area, o.tile, o.halo, tissue, work_to_thumb);
  SlideContext ctx;
  ctx.thumb_signal = signal;
  ctx.tissue = tissue;
  ctx.work_to_thumb = work_to_thumb;
  ctx.work_mpp = res.work_mpp;
  ctx.brightfield = brightfield;
  segmenter.prepare(ctx);
  const double thumb_s = seconds_since(t_thumb);

  SlideRunResult result;
  result.work_mpp = res.work_mpp;
  result.tiles_total = static_cast<int>(plan.tiles.size());
  result.tiles_grid = plan.grid_tiles();
  result.tissue_fraction = static_cast<double>(cv::countNonZero(tissue)) / static_cast<double>(tissue.total());

  // The resume key: everything the tile records depend on.
  json key;
  key["slide"] = fs::path(slide_path).filename().string();
  key["slide_bytes"] = fs::file_size(slide_path);
  key["level0"] = {w0, h0};
  key["work_mpp"] = res.work_mpp;
  key["area"] = {area.x, area.y, area.width, area.height};
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
  const std::string key_text = key.dump(2);
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

  // Tiles.
  const auto t_tiles = Clock::now();
  const double min_area_px = o.filter.min_area_um2 / (res.work_mpp * res.work_mpp);
  const double max_area_px = o.filter.max_area_um2 / (res.work_mpp * res.work_mpp);
  const int stride = plan.tile - 2 * plan.halo;
  int done = 0;
  for (const Tile& t : plan.tiles) {
    const std::string stem = tile_stem(out_dir, t.index);
    if (fs::exists(stem + ".json")) {
      ++result.tiles_resumed;
      ++done;
      if (o.progress) o.progress(done, result.tiles_total);
      continue;
    }
    if (o.stop_after_tiles >= 0 && result.tiles_processed >= o.stop_after_tiles) return result;
    const cv::Rect2d rect_l0(t.read.x * res.scale, t.read.y * res.scale, t.read.width * res.scale,
                             t.read.height * res.scale);
    const cv::Mat raw = read_resampled(*reader, rect_l0, t.read.size());
    const TileMask tm = segmenter.segment(chmap.apply(raw), t.read.tl());
    NEPHRO_CHECK(tm.mask.size() == t.read.size() && tm.mask.type() == CV_8UC1,
                 "segmenter '", segmenter.name(), "' returned a mask of the wrong size or type");
    const cv::Rect core_in_read = t.core - t.read.tl();
    cv::Mat core = tm.mask(core_in_read);
    cv::Mat labels, stats, centroids;
    const int n = cv::connectedComponentsWithStats(core, labels, stats, centroids, 8, CV_32S);
    // A component not touching a core side shared with another grid tile is whole:
    // filter it by area now. Others wait for stitching.
    const bool open_l = t.col > 0, open_r = t.col + 1 < plan.cols, open_t = t.row > 0, open_b = t.row + 1 < plan.rows;
    std::vector<int> remap(n, 0);
    std::vector<Component> comps;
    for (int i = 1; i < n; ++i) {
      const int x = stats.at<int>(i, cv::CC_STAT_LEFT), y = stats.at<int>(i, cv::CC_STAT_TOP);
      const int w = stats.at<int>(i, cv::CC_STAT_WIDTH), h = stats.at<int>(i, cv::CC_STAT_HEIGHT);
      const int a = stats.at<int>(i, cv::CC_STAT_AREA);
      const bool cut = (open_l && x == 0) || (open_t && y == 0) || (open_r && x + w == core.cols) ||
                       (open_b && y + h == core.rows);
      if (!cut && (a < min_area_px || a > max_area_px)) continue;
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
    cv::Mat local = cv::Mat::zeros(core.size(), CV_16U);
    for (int y = 0; y < core.rows; ++y) {
      const int* l = labels.ptr<int>(y);
      uint16_t* out = local.ptr<uint16_t>(y);
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
    json rec;
    rec["tile"] = {t.index, t.row, t.col};
    rec["core"] = {t.core.x, t.core.y, t.core.width, t.core.height};
    json cj = json::array();
    for (const auto& c : comps) cj.push_back({c.area, c.sum_x, c.sum_y, c.score_sum, c.x0, c.y0, c.x1, c.y1});
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
    if (!comps.empty()) {
      std::vector<uchar> png;
      NEPHRO_CHECK(cv::imencode(".png", local, png), "cannot encode tile labels");
      write_file_atomically(stem + ".png", std::string(png.begin(), png.end()));
    }
    write_file_atomically(stem + ".json", rec.dump());  // last: marks the tile done
    ++result.tiles_processed;
    ++done;
    if (o.progress) o.progress(done, result.tiles_total);
  }
  const double tiles_s = seconds_since(t_tiles);

  // Stitch: union-find over (tile, component) across core edges and corners.
  const auto t_stitch = Clock::now();
  std::vector<TileRecord> records(plan.grid_tiles());
  std::vector<int> offset(plan.grid_tiles() + 1, 0);
  for (const Tile& t : plan.tiles) records[t.index] = load_record(tile_stem(out_dir, t.index) + ".json");
  for (int i = 0; i < plan.grid_tiles(); ++i) offset[i + 1] = offset[i] + static_cast<int>(records[i].components.size());
  const int num_nodes = offset.back();
  UnionFind uf;
  uf.parent.resize(num_nodes);
  std::iota(uf.parent.begin(), uf.parent.end(), 0);
  auto node = [&](int tile, int label) { return offset[tile] + label - 1; };
  // a[i] of tile ta touches b[i-1..i+1] of tile tb (8-adjacency across a straight edge).
  auto join_edges = [&](int ta, const std::vector<int>& a, int tb, const std::vector<int>& b) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i]) continue;
      for (int d = -1; d <= 1; ++d) {
        const long j = static_cast<long>(i) + d;
        if (j >= 0 && j < static_cast<long>(b.size()) && b[j]) uf.join(node(ta, a[i]), node(tb, b[j]));
      }
    }
  };
  for (int r = 0; r < plan.rows; ++r)
    for (int c = 0; c < plan.cols; ++c) {
      const int i = r * plan.cols + c;
      const TileRecord& a = records[i];
      if (!a.present || a.components.empty()) continue;
      if (c + 1 < plan.cols && records[i + 1].present) join_edges(i, a.right, i + 1, records[i + 1].left);
      if (r + 1 < plan.rows) {
        const int below = i + plan.cols;
        if (records[below].present) join_edges(i, a.bottom, below, records[below].top);
        if (c + 1 < plan.cols && records[below + 1].present && a.bottom.back() && records[below + 1].top.front())
          uf.join(node(i, a.bottom.back()), node(below + 1, records[below + 1].top.front()));
        if (c > 0 && records[below - 1].present && a.bottom.front() && records[below - 1].top.back())
          uf.join(node(i, a.bottom.front()), node(below - 1, records[below - 1].top.back()));
      }
    }
  // Aggregate per root (nodes are in raster tile order; the root is the earliest node).
  std::vector<Component> agg(num_nodes);
  std::vector<std::vector<int>> root_tiles(num_nodes);
  for (int ti = 0; ti < plan.grid_tiles(); ++ti)
    for (size_t k = 0; k < records[ti].components.size(); ++k) {
      const Component& c = records[ti].components[k];
      const int root = uf.find(offset[ti] + static_cast<int>(k));
      Component& g = agg[root];
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
      if (root_tiles[root].empty() || root_tiles[root].back() != ti) root_tiles[root].push_back(ti);
    }
  std::vector<int> roots;
  for (int i = 0; i < num_nodes; ++i)
    if (uf.find(i) == i) roots.push_back(i);
  result.components = static_cast<int>(roots.size());

  LabelCache cache(out_dir, 64);
  // The mask of one stitched object over its bbox (work pixels).
  auto object_mask = [&](int root) {
    const Component& g = agg[root];
    const cv::Rect box(g.x0, g.y0, g.x1 - g.x0 + 1, g.y1 - g.y0 + 1);
    cv::Mat mask = cv::Mat::zeros(box.size(), CV_8U);
    for (int ti : root_tiles[root]) {
      const int r = ti / plan.cols, c = ti % plan.cols;
      const cv::Rect core = cv::Rect(area.x + c * stride, area.y + r * stride, stride, stride) & area;
      const cv::Rect part = core & box;
      if (part.empty()) continue;
      const TileLabels& lab = cache.get(ti);
      for (int y = part.y; y < part.y + part.height; ++y) {
        uint8_t* m = mask.ptr<uint8_t>(y - box.y);
        lab.for_row(y - core.y, part.x - core.x, part.x + part.width - core.x, [&](int x, uint16_t v) {
          if (uf.find(node(ti, v)) == root) m[x + core.x - box.x] = 255;
        });
      }
    }
    return std::make_pair(box, mask);
  };
  struct Shape {
    double perimeter_px = 0, solidity = 0, circularity = 0;
  };
  auto shape_of = [](const cv::Mat& mask) {
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
  };
  const double max_extent = 4.0 * std::sqrt(max_area_px);
  std::vector<int> kept;
  std::vector<Shape> shapes;
  for (int root : roots) {
    const Component& g = agg[root];
    if (g.area < min_area_px || g.area > max_area_px) continue;
    if (g.x1 - g.x0 + 1 > max_extent || g.y1 - g.y0 + 1 > max_extent) continue;
    const Shape s = shape_of(object_mask(root).second);
    if (s.solidity < o.filter.min_solidity || s.circularity < o.filter.min_circularity) continue;
    kept.push_back(root);
    shapes.push_back(s);
  }
  std::unordered_map<int, uint32_t> final_id;
  for (size_t i = 0; i < kept.size(); ++i) final_id[kept[i]] = static_cast<uint32_t>(i + 1);
  const double stitch_s = seconds_since(t_stitch);

  // Outputs.
  const auto t_out = Clock::now();
  const std::string type_name = object_type_names().name(o.object_type);
  const std::string type_title = o.object_type == ObjectType::kAnnotation ? "Annotation" : "Detection";
  const std::string image_name = fs::path(slide_path).filename().string();
  // The picture: the thumbnail at most 1024 px on its longest side, outlines on top.
  cv::Mat overlay = thumb_rgb;
  const double overlay_scale = std::min(1.0, 1024.0 / std::max(thumb_rgb.cols, thumb_rgb.rows));
  if (overlay_scale < 1.0)
    cv::resize(thumb_rgb, overlay, cv::Size(std::max(1, static_cast<int>(std::lround(thumb_rgb.cols * overlay_scale))),
                                            std::max(1, static_cast<int>(std::lround(thumb_rgb.rows * overlay_scale)))),
               0, 0, cv::INTER_AREA);
  else
    overlay = thumb_rgb.clone();
  const double l0_to_overlay = overlay_scale / thumb.scale_l0;
  for (const Tile& t : plan.tiles) {  // the processed tile cores, thin and light
    const double k = l0_to_overlay * res.scale;
    cv::rectangle(overlay,
                  cv::Rect(cv::Point(static_cast<int>(std::lround(t.core.x * k)), static_cast<int>(std::lround(t.core.y * k))),
                           cv::Point(static_cast<int>(std::lround((t.core.x + t.core.width) * k)) - 1,
                                     static_cast<int>(std::lround((t.core.y + t.core.height) * k)) - 1)),
                  cv::Scalar(120, 170, 230), /*thickness=*/1, cv::LINE_8);
  }
  const double um2 = res.work_mpp * res.work_mpp;
  const std::string geojson_path = (fs::path(out_dir) / "objects.geojson").string();
  const std::string tsv_path = (fs::path(out_dir) / "objects.tsv").string();
  write_atomically(geojson_path, [&](const std::string& gtmp) {
    write_atomically(tsv_path, [&](const std::string& ttmp) {
      std::ofstream gj(gtmp, std::ios::binary), tsv(ttmp, std::ios::binary);
      NEPHRO_CHECK(gj.good() && tsv.good(), "cannot write into '", out_dir, "'");
      gj << "{\"type\":\"FeatureCollection\",\"features\":[";
      tsv << "Image\tObject ID\tObject type\tClassification\tCentroid X µm\tCentroid Y µm\tArea µm^2\tPerimeter µm"
          << "\tCentroid X px\tCentroid Y px\tEquivalent diameter µm\tSolidity\tCircularity\tScore";
      for (const auto& name : info.channel_names)
        tsv << "\t" << name << ": Mean\t" << name << ": Median\t" << name << ": Max";
      tsv << "\n";
      for (size_t i = 0; i < kept.size(); ++i) {
        const int root = kept[i];
        const Component& g = agg[root];
        const auto [box, mask] = object_mask(root);
        const int id = static_cast<int>(i + 1);
        SlideObject obj;
        obj.id = id;
        obj.centroid_x = (g.sum_x / g.area + 0.5) * res.scale;
        obj.centroid_y = (g.sum_y / g.area + 0.5) * res.scale;
        obj.area_um2 = g.area * um2;
        obj.perimeter_um = shapes[i].perimeter_px * res.work_mpp;
        obj.equivalent_diameter_um = 2.0 * std::sqrt(obj.area_um2 / M_PI);
        obj.solidity = shapes[i].solidity;
        obj.score = g.score_sum / g.area;
        obj.bbox_l0 = cv::Rect(static_cast<int>(std::floor(box.x * res.scale)),
                               static_cast<int>(std::floor(box.y * res.scale)),
                               static_cast<int>(std::ceil(box.width * res.scale)),
                               static_cast<int>(std::ceil(box.height * res.scale)));
        // Intensities of the stored samples at the work resolution.
        const cv::Mat raw = read_resampled(
            *reader, cv::Rect2d(box.x * res.scale, box.y * res.scale, box.width * res.scale, box.height * res.scale),
            box.size());
        std::vector<cv::Mat> planes;
        cv::split(raw, planes);
        json meas;
        meas["Area µm^2"] = obj.area_um2;
        meas["Perimeter µm"] = obj.perimeter_um;
        meas["Equivalent diameter µm"] = obj.equivalent_diameter_um;
        meas["Solidity"] = obj.solidity;
        meas["Circularity"] = shapes[i].circularity;
        meas["Score"] = obj.score;
        meas["Centroid X µm"] = obj.centroid_x * res.mpp0;
        meas["Centroid Y µm"] = obj.centroid_y * res.mpp0;
        std::string intensity_cols;
        for (size_t c = 0; c < planes.size(); ++c) {
          cv::Mat v;
          planes[c].convertTo(v, CV_32F);
          std::vector<float> vals;
          vals.reserve(static_cast<size_t>(g.area));
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
        // Outline: pixel-edge polygons (holes kept), in level-0 pixels.
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
                if (ri == 0) thumb_pts.emplace_back(static_cast<int>(std::lround(x * l0_to_overlay)),
                                                    static_cast<int>(std::lround(y * l0_to_overlay)));
              }
              if (!poly[ri].empty()) ring.push_back(ring.front());  // GeoJSON rings are closed
              rings.push_back(ring);
              if (ri == 0 && !thumb_pts.empty())
                cv::polylines(overlay, std::vector<std::vector<cv::Point>>{thumb_pts}, /*isClosed=*/true,
                              cv::Scalar(o.color.r, o.color.g, o.color.b), /*thickness=*/2, cv::LINE_8);
            }
            polys.push_back(rings);
          }
        json feature;
        feature["type"] = "Feature";
        feature["id"] = id;
        if (polys.size() == 1) feature["geometry"] = {{"type", "Polygon"}, {"coordinates", polys[0]}};
        else feature["geometry"] = {{"type", "MultiPolygon"}, {"coordinates", polys}};
        feature["properties"] = {{"objectType", type_name},
                                 {"name", "Glomerulus " + std::to_string(id)},
                                 {"classification", {{"name", o.class_name}, {"color", {o.color.r, o.color.g, o.color.b}}}},
                                 {"isLocked", false},
                                 {"measurements", meas}};
        gj << (i ? ",\n" : "\n") << feature.dump();
        tsv << image_name << "\t" << id << "\t" << type_title << "\t" << o.class_name << "\t"
            << fmt(obj.centroid_x * res.mpp0) << "\t" << fmt(obj.centroid_y * res.mpp0) << "\t" << fmt(obj.area_um2)
            << "\t" << fmt(obj.perimeter_um) << "\t" << fmt(obj.centroid_x, 2) << "\t" << fmt(obj.centroid_y, 2)
            << "\t" << fmt(obj.equivalent_diameter_um) << "\t" << fmt(obj.solidity) << "\t"
            << fmt(shapes[i].circularity) << "\t" << fmt(obj.score) << intensity_cols << "\n";
        result.objects.push_back(obj);
      }
      gj << "\n]}\n";
      gj.close();
      tsv.close();
      NEPHRO_CHECK(gj.good() && tsv.good(), "error while writing into '", out_dir, "' (disk full?)");
    });
  });

  // Label pyramid: the instance id of every work pixel, read back from the tiles.
  // Per tile: local label -> final id (0 = filtered out).
  std::vector<std::vector<uint32_t>> local_to_final(plan.grid_tiles());
  for (int ti = 0; ti < plan.grid_tiles(); ++ti) {
    auto& m = local_to_final[ti];
    m.assign(records[ti].components.size() + 1, 0u);
    for (size_t k = 0; k < records[ti].components.size(); ++k) {
      auto it = final_id.find(uf.find(offset[ti] + static_cast<int>(k)));
      if (it != final_id.end()) m[k + 1] = it->second;
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
      lab = &cache.get(ti);
      cached_tile = ti;
    }
    return local_to_final[ti][lab->at(y - (area.y + r * stride), x - (area.x + c * stride))];
  };
  // Rows of the work grid, or of level 0 (pixel centre (x + 0.5, y + 0.5) lies in work
  // pixel floor((x + 0.5) / scale)).
  const bool at_level0 = o.labels_at_level0 && std::abs(res.scale - 1.0) > 1e-12;
  auto work_of = [&](int v) { return static_cast<int>(std::floor((v + 0.5) / res.scale)); };
  auto label_at_rows = [&](int y, int x0, int step, int count, uint32_t* out) {
    const int yw = at_level0 ? work_of(y) : y;
    for (int k = 0; k < count; ++k) {
      const int x = x0 + k * step;
      out[k] = label_at(at_level0 ? work_of(x) : x, yw);
    }
  };
  LabelPyramidSpec spec;
  spec.width = at_level0 ? static_cast<int>(w0) : work_size.width;
  spec.height = at_level0 ? static_cast<int>(h0) : work_size.height;
  spec.mpp = at_level0 ? res.mpp0 : res.work_mpp;
  spec.name = image_name;
  write_label_pyramid((fs::path(out_dir) / "labels.ome.tif").string(), spec, label_at_rows);
  io::write_png((fs::path(out_dir) / "thumbnail.png").string(), overlay);
  const double out_s = seconds_since(t_out);

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
  run["work_size"] = {work_size.width, work_size.height};
  run["area_work_px"] = {area.x, area.y, area.width, area.height};
  run["tile"] = o.tile;
  run["halo"] = o.halo;
  run["tiles"] = {{"grid", result.tiles_grid}, {"tissue", result.tiles_total}};
  run["tissue_mode"] = tissue_mode_names().name(o.tissue.mode);
  run["tissue_fraction"] = result.tissue_fraction;
  run["segmenter"] = segmenter.name();
  run["segmenter_config"] = json::parse(segmenter.config_json());
  run["filter"] = {{"min_area_um2", o.filter.min_area_um2}, {"max_area_um2", o.filter.max_area_um2},
                   {"min_solidity", o.filter.min_solidity}, {"min_circularity", o.filter.min_circularity}};
  run["object_type"] = type_name;
  run["counts"] = {{"components", result.components}, {"objects", static_cast<int>(kept.size())}};
  run["outputs"] = {"objects.geojson", "objects.tsv", "labels.ome.tif", "thumbnail.png"};
  run["labels"] = {{"resolution", at_level0 || std::abs(res.scale - 1.0) <= 1e-12 ? "level0" : "work"},
                   {"width", spec.width},
                   {"height", spec.height},
                   {"mpp", spec.mpp}};
  run["timings_s"] = {{"thumbnail_tissue", thumb_s}, {"tiles", tiles_s}, {"tiles_processed_now", result.tiles_processed},
                      {"stitch", stitch_s}, {"outputs", out_s}, {"total", seconds_since(t_start)}};
  write_file_atomically((fs::path(out_dir) / "run.json").string(), run.dump(2) + "\n");
  result.complete = true;
  return result;
}

}  // namespace nephroseg::slide

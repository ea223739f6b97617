// `bench slide`: synthetic slides of growing size, peak RSS and time per run.
#include "nephroseg/bench/slide.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <tiffio.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/slide/run.h"

namespace fs = std::filesystem;

namespace nephroseg::bench {
namespace {

constexpr double kTissueRadius = 3000.0;  // level-0 px (1.5 mm at 0.5 µm/px)
constexpr double kGlomRadius = 150.0;
constexpr int kGlomSpacing = 1200;

struct Scene {
  std::vector<std::pair<double, double>> tissue;  // disc centres
  bool in_tissue(double x, double y) const {
    for (const auto& [cx, cy] : tissue)
      if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= kTissueRadius * kTissueRadius) return true;
    return false;
  }
  // Glomeruli: on a grid, wholly inside a tissue disc.
  bool in_glom(double x, double y) const {
    const double gx = std::round(x / kGlomSpacing) * kGlomSpacing, gy = std::round(y / kGlomSpacing) * kGlomSpacing;
    if ((x - gx) * (x - gx) + (y - gy) * (y - gy) > kGlomRadius * kGlomRadius) return false;
    return glom_at(gx, gy);
  }
  bool glom_at(double gx, double gy) const {
    for (const auto& [cx, cy] : tissue)
      if (std::hypot(gx - cx, gy - cy) + kGlomRadius + 60 <= kTissueRadius) return true;
    return false;
  }
};

Scene make_scene(int side) {
  Scene s;
  const int n = std::max(1, static_cast<int>(std::lround(static_cast<double>(side) * side / 2.7e8)));
  // Deterministic placement on a coarse lattice (no overlap between discs).
  const int per_row = std::max(1, static_cast<int>(side / (2.5 * kTissueRadius)));
  for (int i = 0; i < n; ++i) {
    const int r = i / per_row, c = i % per_row;
    const double x = kTissueRadius * 1.2 + c * 2.5 * kTissueRadius + (r % 2) * 700.0;
    const double y = kTissueRadius * 1.2 + r * 2.5 * kTissueRadius * 1.3;
    s.tissue.emplace_back(std::min(x, side - kTissueRadius * 1.05), std::min(y, side - kTissueRadius * 1.05));
  }
  return s;
}

// Runs fn in a forked child; returns its exit status and peak RSS (KiB).
std::pair<int, long> in_child(const std::function<int()>& fn) {
  const pid_t pid = fork();
  NEPHRO_CHECK(pid >= 0, "bench slide: fork failed");
  if (pid == 0) {
    int code = 1;
    try {
      code = fn();
    } catch (...) {
      code = 2;
    }
    _exit(code);
  }
  int status = 0;
  struct rusage ru {};
  NEPHRO_CHECK(wait4(pid, &status, 0, &ru) == pid, "bench slide: wait failed");
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ru.ru_maxrss};
}

}  // namespace

int write_bench_slide(const std::string& path, int side) {
  NEPHRO_CHECK(side >= 1024, "bench slide: side must be >= 1024");
  const Scene scene = make_scene(side);
  int levels = 1;
  for (int w = side; w > 1024; w = (w + 1) / 2) ++levels;
  const bool big = static_cast<double>(side) * side > 3.9e9;
  write_atomically(path, [&](const std::string& tmp) {
    TIFF* tif = TIFFOpen(tmp.c_str(), big ? "w8" : "w");
    NEPHRO_CHECK(tif, "cannot create '", path, "'");
    const int t = 256;
    std::vector<uint8_t> buf(t * t);
    for (int k = 0; k < levels; ++k) {
      const int f = 1 << k, w = (side + f - 1) / f;
      TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w);
      TIFFSetField(tif, TIFFTAG_IMAGELENGTH, w);
      TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
      TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
      TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
      TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
      TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
      TIFFSetField(tif, TIFFTAG_TILEWIDTH, t);
      TIFFSetField(tif, TIFFTAG_TILELENGTH, t);
      if (k == 0) {
        const std::string xml =
            "<?xml version=\"1.0\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\"><Image "
            "ID=\"Image:0\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYZCT\" Type=\"uint8\" SizeX=\"" +
            std::to_string(side) + "\" SizeY=\"" + std::to_string(side) +
            "\" SizeZ=\"1\" SizeC=\"1\" SizeT=\"1\" PhysicalSizeX=\"0.5\" PhysicalSizeY=\"0.5\"/></Image></OME>";
        TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, xml.c_str());
        if (levels > 1) {
          std::vector<toff_t> offsets(levels - 1, 0);
          TIFFSetField(tif, TIFFTAG_SUBIFD, static_cast<uint16_t>(levels - 1), offsets.data());
        }
      } else {
        TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
      }
      for (int ty = 0; ty < w; ty += t)
        for (int tx = 0; tx < w; tx += t) {
          // Tiles away from every tissue disc are empty.
          const double x0 = tx * static_cast<double>(f), y0 = ty * static_cast<double>(f), span = t * f;
          bool near = false;
          for (const auto& [cx, cy] : scene.tissue)
            near |= cx + kTissueRadius >= x0 && cx - kTissueRadius <= x0 + span && cy + kTissueRadius >= y0 &&
                    cy - kTissueRadius <= y0 + span;
          std::fill(buf.begin(), buf.end(), 0);
          if (near)
            for (int j = 0; j < t; ++j)
              for (int i = 0; i < t; ++i) {
                const double x = (tx + i + 0.5) * f, y = (ty + j + 0.5) * f;
                if (x >= side || y >= side || !scene.in_tissue(x, y)) continue;
                buf[j * t + i] = scene.in_glom(x, y) ? 200 : 50;
              }
          NEPHRO_CHECK(TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, tx, ty, 0, 0), buf.data(), t * t) >= 0,
                       "error while writing '", path, "'");
        }
      TIFFWriteDirectory(tif);
    }
    TIFFClose(tif);
  });
  int count = 0;
  for (int gy = 0; gy <= side; gy += kGlomSpacing)
    for (int gx = 0; gx <= side; gx += kGlomSpacing)
      if (scene.glom_at(gx, gy) && gx + kGlomRadius < side && gy + kGlomRadius < side) ++count;
  return count;
}

std::vector<SlideBenchRow> bench_slide(const std::string& work_dir, const std::vector<int>& sides) {
  fs::create_directories(work_dir);
  std::vector<SlideBenchRow> rows;
  for (int side : sides) {
    SlideBenchRow row;
    row.side = side;
    const std::string slide = (fs::path(work_dir) / ("synthetic_" + std::to_string(side) + ".ome.tif")).string();
    const std::string out = (fs::path(work_dir) / ("out_" + std::to_string(side))).string();
    const std::string count_file = slide + ".count";
    auto [wcode, wrss] = in_child([&] {
      const int n = write_bench_slide(slide, side);
      write_file_atomically(count_file, std::to_string(n));
      return 0;
    });
    NEPHRO_CHECK(wcode == 0, "bench slide: writing the ", side, " px slide failed");
    std::ifstream(count_file) >> row.expected_objects;
    fs::remove_all(out);
    const std::string stats_file = out + ".stats.json";
    auto [code, rss] = in_child([&] {
      auto seg = slide::make_segmenter("classical");
      const auto t0 = std::chrono::steady_clock::now();
      const auto r = slide::run_slide(slide, out, *seg);
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      nlohmann::json j;
      j["wall_s"] = wall;
      j["tiles"] = r.tiles_total;
      j["objects"] = r.objects.size();
      j["tissue_fraction"] = r.tissue_fraction;
      write_file_atomically(stats_file, j.dump());
      return 0;
    });
    NEPHRO_CHECK(code == 0, "bench slide: the run on the ", side, " px slide failed");
    std::ifstream in(stats_file);
    nlohmann::json j;
    in >> j;
    row.peak_rss_mib = rss / 1024.0;
    row.wall_s = j["wall_s"];
    row.tiles = j["tiles"];
    row.objects = j["objects"];
    row.tissue_megapixels = j["tissue_fraction"].get<double>() * side * static_cast<double>(side) / 1e6;
    row.s_per_tissue_mp = row.tissue_megapixels > 0 ? row.wall_s / row.tissue_megapixels : 0.0;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace nephroseg::bench

// nephroseg/io/geojson.h: QuPath-compatible GeoJSON for segmentation objects.
//
// Output: a FeatureCollection with one Feature per object (per label of an instance
// label image). Geometry is a Polygon (MultiPolygon when one label has several
// 8-connected parts) in **pixel coordinates with pixel corners at integers**: the
// pixel (x, y) is the square [x, x+1] x [y, y+1], as QuPath draws it. Rings follow
// the pixel edges exactly (no smoothing; collinear vertices are merged), so reading
// back and filling gives the same mask. Holes are kept as interior rings. Exterior
// rings have positive shoelace area in these coordinates and holes negative (the
// RFC 7946 right-hand rule read in the stored numbers). Diagonal-only contact keeps
// pixels in one object (8-connectivity); such an exterior ring touches itself at a
// vertex.
// properties: objectType ("annotation" by default), name, classification
// {name, color [r,g,b]}, measurements {"Area px^2", "Perimeter px", "Centroid X px",
// "Centroid Y px", "Label", plus any supplied by the caller}.
// Reading fills each polygon with the even-odd rule at pixel centres, which is exact
// for the files we write and the usual raster rule for others (QuPath exports, float
// vertices).
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nephroseg/io/overlay.h"

namespace nephroseg::io {

/// One object: polygons[i][0] is an exterior ring, polygons[i][1..] its holes.
/// Rings are open (the first vertex is not repeated).
struct PolygonObject {
  int label = 0;
  std::vector<std::vector<std::vector<cv::Point2d>>> polygons;
  std::string class_name;
  Rgb color{255, 0, 0};
  std::vector<std::pair<std::string, double>> measurements;
};

struct GeoJsonOptions {
  std::string object_type = "annotation";  ///< QuPath objectType ("annotation"/"detection")
  std::string class_name = "Object";       ///< classification name
  Rgb color{255, 0, 0};                    ///< classification colour
  bool shape_measurements = true;          ///< add area, perimeter, centroid, label
};

/// Traces the pixel-edge outline of every label of a CV_32S (or 8/16-bit) label
/// image (0 = background). Objects are ordered by label.
std::vector<PolygonObject> trace_objects(const cv::Mat& labels);

/// GeoJSON text of objects (class/colour from each object, or options when empty).
std::string to_geojson(const std::vector<PolygonObject>& objects, const GeoJsonOptions& options = {});

/// Traces labels and writes the FeatureCollection atomically. extra_measurements maps
/// a label to measurements appended to that feature.
void write_geojson(const std::string& path, const cv::Mat& labels, const GeoJsonOptions& options = {},
                   const std::map<int, std::vector<std::pair<std::string, double>>>& extra_measurements = {});

/// Parses a GeoJSON FeatureCollection (or a single Feature / a bare array of
/// Features, as QuPath also writes) with Polygon / MultiPolygon geometries; other
/// geometry types are skipped. Labels are 1..N in file order.
std::vector<PolygonObject> read_geojson(const std::string& path);

/// Fills objects into a CV_32S label image of the given size (object i -> its label,
/// or i+1 when label is 0); later objects overwrite earlier ones.
cv::Mat rasterize_objects(const std::vector<PolygonObject>& objects, cv::Size size);

}  // namespace nephroseg::io

// nephroseg/serve/server.h: a local HTTP server speaking samapi's wire protocol, so
// that QuPath's SAM extension (ksugar/qupath-extension-sam) can use nephroseg as its
// backend (`nephroseg serve`).
//
//   nephroseg::serve::ServeOptions o;                  // every default lives here
//   o.models_dir = "models/";                          // official file names
//   o.port = 0;                                        // 0: any free port
//   nephroseg::serve::Server server(o);
//   int port = server.start();                         // bound; serving in a thread
//   // QuPath: server URL http://127.0.0.1:<port>/sam/
//   server.stop();                                     // finishes requests in flight
//
// Routes (samapi's, under /sam/): GET version/ (plain text), GET weights/?type=T
// (JSON list of {type, name, url}; url = "nephroseg:NAME"), POST weights/ (register a
// local checkpoint inside models_dir; plain-text answer), GET weights/cancel/, GET
// progress/, POST /sam/ (prompted SAM / MedSAM; a JSON list of GeoJSON Features),
// POST automask/ (sam/automask.h with samapi's fields; one Feature per mask in the
// generator's order, quality = predicted IoU; GlomSAM / GBMSeg entries: see below). SAM2 / SAM3 / video routes and types answer 501. Every error is
// JSON {"detail": "..."}: 400 bad input (JSON, base64, image, prompt), 401 missing
// token, 404 unknown path or model, 413 body or image too large, 501 not supported,
// 503 the model's queue is full, 500 an unexpected failure. A bad request never stops
// the server.
//
// The workbench (docs/workbench.md; src/serve/workbench*.cpp): with `roots` set, GET /
// is a browser page (embedded at build time) and /api/ its JSON API over those folders:
// files named by virtual paths "<root name>/<relative>" (absolute paths, "..", unknown
// roots and symlinks leading out of a root: 403), 256 x 256 image and mask tiles from
// an LRU of decoded images (workbench_cache_mb), SAM annotation sessions (the entries,
// embedding cache and queues of /sam/), GBMSeg batch jobs in background threads
// (cancelled and joined by stop()), review with re-measure, and export. Its errors are
// the same JSON {"detail"} with 403 outside the roots and 409 for a second job on one
// output folder.
//
// Geometry: masks are traced along pixel edges (io/geojson.h: pixel (x, y) is the
// square [x, x+1] x [y, y+1] of the PNG sent), holes kept; one part gives a Polygon,
// several a MultiPolygon, an empty mask samapi's empty Polygon. Properties as samapi:
// object_idx (samapi's numbering: mask i -> i - 1), label "object", quality (predicted
// IoU of that mask), sam_model (the entry's name).
//
// Memory: each model entry is loaded on its first request and stays loaded, so the
// models in memory are at most the entries configured (--models, --weights, POST
// weights/ inside models_dir). Image embeddings live in one LRU cache bounded by
// cache_mb. Each model runs one request at a time; at most queue_depth more wait,
// further ones get 503 at once. Request bodies are bounded by max_body_mb (checked
// from Content-Length before reading) and images by max_image_mp (read from the
// PNG / JPEG header before decoding).
//
// Thread-safety: start(), stop() and the counters may be called from any thread;
// stop() is safe from a signal-watching thread (not from a signal handler itself).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nephroseg/core/precision.h"

namespace nephroseg::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";  ///< address to bind; another than 127.0.0.1 /
                                   ///< localhost requires `token`
  int port = 8000;                 ///< 0: any free port (Server::port() tells which)
  std::string models_dir;          ///< official checkpoints by file name; the only
                                   ///< folder POST weights/ may register from
  std::string weights_file;        ///< JSON list of entries (see registry below)
  std::string token;               ///< non-empty: every request needs
                                   ///< "Authorization: Bearer T" or the path prefix /T/
  double max_image_mp = 64.0;      ///< largest image, megapixels (width x height / 1e6)
  double max_automask_mp = 4.0;    ///< largest image for automask/, megapixels: its
                                   ///< kept masks are held at full size until NMS
  double max_body_mb = 64.0;       ///< largest request body, MiB
  double cache_mb = 2048.0;        ///< image-embedding cache, MiB
  int queue_depth = 4;             ///< requests that may wait per model (0: none)
  int http_threads = 8;            ///< connections served at once
  Precision precision = Precision::kAuto;  ///< entries without "precision"
  /// Folders the workbench page (/, /api/) may list, read and write in (`--root`,
  /// repeatable; docs/workbench.md). Without any, the page loads but shows no files.
  std::vector<std::string> roots;
  double workbench_cache_mb = 1024.0;  ///< decoded images for tiles and thumbnails, MiB
  bool log_requests = true;        ///< one line per request on stderr (via core/log.h)
  /// Tests only: called while a request holds its model (after the queue check,
  /// before the encoder), with the entry's name.
  std::function<void(const std::string&)> on_model_held;

  /// Throws nephroseg::Error naming the first bad field (and a non-local host
  /// without a token).
  void validate() const;
};

// Registry entries from `weights_file`: a JSON list of objects
//   {"name": "tiny", "kind": "sam" | "medsam" | "glomsam" | "gbmseg" | "dinov2",
//    "type": samapi type ("vit_b" | "vit_l" | "vit_h"; default from model_type, else
//            "vit_b"), "checkpoint": path (relative to the JSON file),
//    "model_type": SamConfig preset name, or "model_config": SamConfig JSON path,
//    "precision": "auto" | "fp32" | "bf16" | "int8" (default: ServeOptions::precision)}
// kind "glomsam": {"name", "kind", "type", "checkpoint", "config": "auto" | "official" |
//   "tiny" | JSON path (GlomSamModel::config_for, as `glomsam predict --config`),
//   "threshold": logit (default GlomSamPredictOptions::threshold), "precision"}.
//   POST /sam/ needs "bbox" (the clinician's box of the GlomSAM protocol; points are
//   ignored beside it, points or b64mask alone get 400) and answers one Feature:
//   GlomSamModel::predict with that box, as `glomsam predict --box`. POST automask/:
//   glomsam::rough_mask -> component_boxes (8-connected, >= 16 px, bounding box + 10 px,
//   glomsam/rough_boxes.h) -> predict per box; one Feature per non-empty mask, in
//   component order. quality is null (GlomSAM gives no IoU); QuPath then records none.
// kind "gbmseg": {"name", "kind", "type", "dinov2": {"checkpoint", "model_type" |
//   "model_config"}, "sam": {same}, "reference_images": [files], "reference_masks":
//   [one per image] (several pairs are pooled, few-shot), "preset": as `gbmseg --preset`
//   (default GbmSegBatchOptions::preset), "precision"}. Both routes (prompts and automask
//   fields ignored) run GbmSegPipeline::segment on the region; the pipeline, with the
//   references' features, is built on the first request and kept in the entry
//   (Server::reference_computations counts the builds). One Feature per 8-connected
//   part of the mask, quality null.
// kind "dinov2": {"name", "kind", "checkpoint", "model_type" ("vits14" .. "vitg14") |
//   "model_config", "precision"}, no samapi "type": GBMSeg's patch features in workbench
//   runs only (not listed by GET weights/, not a /sam/ model).
// Unknown keys (per kind) or kinds are errors naming the entry and the field; missing
// reference files, a mask count unlike the image count and unknown presets too. From
// models_dir, the official file names (workloads/model_files.h) become entries named
// by their file stem (the DINOv2 ones, dinov2_vit*14_pretrain.pth, as kind "dinov2").

class Server {
 public:
  /// Validates the options and builds the model registry (no model is loaded yet).
  explicit Server(ServeOptions options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds host:port and serves in a background thread; returns the bound port.
  /// Throws nephroseg::Error when the address cannot be bound.
  int start();
  /// Stops accepting, lets requests in flight finish, joins the thread. Idempotent.
  void stop();
  /// Blocks until stop() has been called (from another thread).
  void wait();
  /// The bound port (0 before start()).
  int port() const;

  /// Requests whose image embedding came from the cache / was computed.
  int64_t cache_hits() const;
  int64_t cache_misses() const;
  /// GBMSeg entries: times a pipeline's reference features were computed (once per
  /// entry, on its first request).
  int64_t reference_computations() const;
  /// Names of the registered model entries, in order.
  std::string entry_names() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace nephroseg::serve

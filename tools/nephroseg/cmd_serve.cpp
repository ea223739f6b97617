// `nephroseg serve`: a local HTTP server speaking samapi's protocol, so QuPath's SAM
// extension uses nephroseg as its backend (server URL http://127.0.0.1:8000/sam/).
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include "command.h"
#include "nephroseg/serve/server.h"

namespace nephroseg::cli {
namespace {

std::atomic<int> g_signal{0};
extern "C" void on_stop_signal(int signal) { g_signal.store(signal); }

int run_serve(serve::ServeOptions& o) {
  o.precision = global_options().precision;
  serve::Server server(o);
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  const int port = server.start();
  const std::string prefix = o.token.empty() ? "" : "<token>/";
  std::cerr << "serve: listening on http://" << o.host << ":" << port << "/" << std::endl;
  if (!o.roots.empty())
    std::cerr << "serve: workbench http://" << o.host << ":" << port << "/" << prefix << " (folders: "
              << o.roots.size() << ")" << std::endl;
  std::cerr << "serve: QuPath server URL http://" << o.host << ":" << port << "/" << prefix << "sam/; models: "
            << (server.entry_names().empty() ? "none (give --models or --weights)" : server.entry_names())
            << std::endl;
  while (g_signal.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::cerr << "serve: signal " << g_signal.load() << ", stopping (requests in flight finish)" << std::endl;
  server.stop();
  return 0;
}

Runner setup_serve(CLI::App& app) {
  auto o = std::make_shared<serve::ServeOptions>();
  app.add_option("--host", o->host, "address to bind (another than 127.0.0.1 needs --token)")->capture_default_str();
  app.add_option("--port", o->port, "TCP port (0: any free port, printed on stderr)")->capture_default_str();
  app.add_option("--models", o->models_dir, "folder of official checkpoints (sam_vit_b_01ec64.pth, medsam_vit_b.pth, ...)");
  app.add_option("--weights", o->weights_file, "JSON list of model entries {name, kind, type, checkpoint, ...}");
  app.add_option("--root", o->roots, "folder the workbench page (http://HOST:PORT/) may browse and write in; "
                 "repeatable (docs/workbench.md)");
  app.add_option("--token", o->token, "secret: requests need 'Authorization: Bearer T' or the URL prefix /T/");
  app.add_option("--max-image-mp", o->max_image_mp, "largest image, megapixels")->capture_default_str();
  app.add_option("--max-automask-mp", o->max_automask_mp, "largest image for automask, megapixels")->capture_default_str();
  app.add_option("--max-body-mb", o->max_body_mb, "largest request body, MiB")->capture_default_str();
  app.add_option("--cache-mb", o->cache_mb, "image-embedding cache, MiB")->capture_default_str();
  app.add_option("--queue-depth", o->queue_depth, "requests that may wait per model (more get 503)")
      ->capture_default_str();
  app.add_option("--http-threads", o->http_threads, "connections served at once")->capture_default_str();
  return [o] { return run_serve(*o); };
}

}  // namespace

NEPHRO_COMMAND("", "serve", "local HTTP server with samapi's routes (QuPath's SAM extension)", setup_serve);

}  // namespace nephroseg::cli

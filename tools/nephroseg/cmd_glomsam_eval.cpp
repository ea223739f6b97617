// nephroseg glomsam eval: the GlomSAM paper's protocol (Tables 2-4) over image sets,
// annotator levels and models; the work is in nephroseg/workloads/glomsam_protocol.h.
#include <iostream>

#include "command.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/workloads/glomsam_protocol.h"

namespace nephroseg::cli {
namespace {

struct EvalParams {
  std::vector<std::string> sets, truths, models, configs;
  std::string images;
  workloads::ProtocolOptions o;
};

// NAME=VALUE shape is a usage rule (exit 2); what the parts mean is checked by the library.
void require_pair(const std::string& text, const std::string& option, const std::string& shape) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw UsageError(option + " '" + text + "': expected " + shape);
}

Runner setup(CLI::App& app) {
  auto p = std::make_shared<EvalParams>();
  auto* sets = app.add_option("--set", p->sets, "image set NAME=DIR (repeatable, e.g. 10x=DIR --set 20x=DIR)");
  auto* images = app.add_option("--images", p->images, "a single image folder (set name 'images')");
  sets->excludes(images);
  app.add_option("--truth", p->truths,
                 "annotator level LEVEL=DIR of masks named like the images (repeatable; DIR/<set>/ is used when it "
                 "exists)")
      ->required();
  app.add_option("--model", p->models,
                 "KIND[:LABEL]=CHECKPOINT, KIND one of " + workloads::model_kind_names().choices() + " (repeatable)")
      ->required();
  app.add_option("--model-config", p->configs,
                 "LABEL=CONFIG for the model of that label (default label = kind): glomsam/unet: official | tiny | "
                 "JSON; sam/medsam: vit_b | vit_l | vit_h | medsam | JSON");
  app.add_option("--jitter", p->o.jitter, "max outward shift of each box side, px (the reference uses 20)")
      ->capture_default_str();
  app.add_option("--seed", p->o.seed, "seed of the box jitter")->capture_default_str();
  app.add_flag("--per-instance", p->o.per_instance, "one box per connected truth component (union of the masks)");
  app.add_option("--instance-iou", p->o.instance_iou, "IoU for an instance match")->capture_default_str();
  app.add_option("--title", p->o.title, "report title")->capture_default_str();
  add_out_option(app, p->o.out_dir, "report folder");
  return [p]() {
    auto& o = p->o;
    if (p->sets.empty() && p->images.empty()) throw UsageError("give --set NAME=DIR (repeatable) or --images DIR");
    for (const auto& s : p->sets) require_pair(s, "--set", "NAME=DIR");
    for (const auto& t : p->truths) require_pair(t, "--truth", "LEVEL=DIR");
    for (const auto& m : p->models) require_pair(m, "--model", "KIND[:LABEL]=CHECKPOINT");
    for (const auto& c : p->configs) require_pair(c, "--model-config", "LABEL=CONFIG");
    if (!p->images.empty()) o.sets.push_back({"images", p->images});
    for (const auto& s : p->sets) o.sets.push_back(workloads::parse_named_folder(s, "--set"));
    for (const auto& t : p->truths) o.truths.push_back(workloads::parse_named_folder(t, "--truth"));
    for (const auto& m : p->models) {
      o.models.push_back(workloads::parse_model_spec(m, "--model"));
      o.models.back().precision = global_options().precision;
    }
    for (const auto& c : p->configs) {
      const size_t eq = c.find('=');
      const std::string label = c.substr(0, eq);
      bool found = false;
      for (auto& m : o.models) {
        const std::string own = m.label.empty() ? workloads::model_kind_names().name(m.kind) : m.label;
        if (own == label) {
          m.config = c.substr(eq + 1);
          found = true;
        }
      }
      NEPHRO_CHECK(found, "--model-config '", c, "': no --model is labelled '", label, "'");
    }
    o.on_image = [](const std::string& set, const std::string& image, size_t i, size_t n) {
      if (!global_options().quiet) log_info("glomsam eval: ", set, " ", i + 1, "/", n, " ", image);
    };
    const workloads::ProtocolRun run = workloads::evaluate_protocol(o);
    for (const auto& g : run.groups) {
      std::cout << g.set << "\t" << g.level << "\t" << g.model;
      for (const auto& m : workloads::protocol_metrics()) std::cout << "\t" << m << " " << g.summary.at(m).mean;
      std::cout << "\tinstance_recall " << g.instance_recall << "\n";
    }
    std::cout << "report: " << o.out_dir << "/report.html" << std::endl;
    return 0;
  };
}

NEPHRO_COMMAND("glomsam", "eval", "the paper's protocol: sets x annotator levels x models, report", setup);

}  // namespace
}  // namespace nephroseg::cli

// nephroseg glomsam train / train-unet: train GlomSAM or its UNet rough-mask generator.
#include <ATen/ATen.h>

#include <iostream>

#include "command.h"
#include "glomsam_ablation.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/train/glomsam_trainer.h"

namespace nephroseg::cli {
namespace {

// --distributed and its rendezvous options (docs/glomsam.md, "Data-parallel training").
void add_distributed_options(CLI::App& app, train::DistributedOptions& d) {
  app.add_flag("--distributed", d.enabled,
               "data-parallel training, one process per rank: rank / world size from RANK and WORLD_SIZE or "
               "SLURM_PROCID and SLURM_NTASKS; rendezvous at MASTER_ADDR:MASTER_PORT or --dist-store");
  app.add_option("--dist-store", d.store_file,
                 "rendezvous file on a folder every rank sees (FileStore; default $NEPHROSEG_DIST_STORE, else "
                 "TCP at MASTER_ADDR:MASTER_PORT); use a fresh path per run");
  app.add_option("--dist-timeout", d.timeout_seconds, "seconds to wait for every rank to join")
      ->capture_default_str();
}

void print_summary(const train::TrainSummary& s) {
  if (s.rank != 0) return;  // rank 0 reports for the whole group
  std::cout << "best epoch " << s.best_epoch << " val Dice " << s.best_val_dice << " -> " << s.best_checkpoint
            << std::endl;
}

struct TrainParams {
  train::GlomSamTrainOptions o;
  std::string config = "official";
  std::string boundary = "per_image";
  std::string token_order;
  AblationSwitches ablation;
};

Runner setup_train(CLI::App& app) {
  auto p = std::make_shared<TrainParams>();
  auto& o = p->o;
  app.add_option("--images", o.images_dir, "folder of training images")->required();
  app.add_option("--masks", o.masks_dir, "folder of masks (same file stems)")->required();
  app.add_option("--val-images", o.val_images_dir, "folder of validation images");
  app.add_option("--val-masks", o.val_masks_dir, "folder of validation masks");
  app.add_option("--split", o.split, "train:val[:test] ratio when no validation folders")->capture_default_str();
  app.add_option("--seed", o.seed, "seed (weights init, shuffling, box jitter, split)")->capture_default_str();
  app.add_option("--sam-checkpoint,--sam", o.sam_checkpoint, "SAM / MedSAM ViT-B checkpoint for encoder, prompt encoder, decoder");
  app.add_option("--resnet", o.resnet_checkpoint, "torchvision ResNet checkpoint (resnet101-cd907fc2.pth)");
  app.add_option("--unet", o.unet_checkpoint, "RoughMaskGenerator checkpoint ({'state_dict': ...})");
  app.add_option("--init", o.init_checkpoint, "full GlomSAM checkpoint to start from (instead of --sam/--resnet/--unet)");
  add_out_option(app, o.out_dir, "run folder (checkpoints, log.csv, curves.png)");
  app.add_option("--model-config,--config", p->config, "model config: official | tiny | JSON file")->capture_default_str();
  app.add_option("--epochs", o.epochs, "epochs")->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "batch size")->capture_default_str();
  app.add_option("--lr", o.lr, "AdamW learning rate")->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->capture_default_str();
  app.add_option("--patch-size", o.patch_size, "side cut from images (0 = model input size); resized to the model size")
      ->capture_default_str();
  app.add_option("--stride", o.stride, "sliding-window stride for larger images (0 = patch size)")->capture_default_str();
  app.add_option("--box-jitter", o.box_jitter, "max outward jitter of GT boxes, px")->capture_default_str();
  app.add_flag("--auto-box", o.auto_box, "boxes from the rough mask instead of the GT");
  app.add_flag("!--train-unet-too", o.freeze_unet, "also train the UNet (the released script's behaviour)");
  app.add_flag("--train-vit", o.train_vit, "also train the ViT (for training from random init, without --sam)");
  app.add_option("--lr-schedule", o.lr_schedule, "constant (reference) | cosine (per epoch, to 0)")
      ->capture_default_str();
  app.add_option("--boundary", p->boundary, "Boundary DoU convention: per_image | glomsam_broadcast")->capture_default_str();
  app.add_option("--token-order", p->token_order, "prompt-generator token order: reference | per_token");
  app.add_option("--patience", o.patience, "early stopping patience in epochs (0 = off)")->capture_default_str();
  app.add_option("--max-batches", o.max_batches_per_epoch, "cap batches per epoch (0 = all)")->capture_default_str();
  app.add_flag("--resume", o.resume, "continue from OUT/last.pth (every rank of a distributed run reads it)");
  app.add_flag("--freeze-bn", o.freeze_batchnorm,
               "BatchNorm layers use (and keep) their running statistics; makes a distributed run match one "
               "process with the global batch");
  add_distributed_options(app, o.distributed);
  add_ablation_options(app, p->ablation, /*training=*/true);
  return [p]() {
    auto& o = p->o;
    o.config = glomsam::GlomSamConfig::preset(p->config);
    p->ablation.apply(o.config);
    if (!p->token_order.empty())
      o.config.token_order = glomsam::token_order_names().parse(p->token_order, "--token-order");
    o.loss.boundary = train::boundary_convention_names().parse(p->boundary, "--boundary");
    print_summary(train::train_glomsam(o));
    return 0;
  };
}

Runner setup_train_unet(CLI::App& app) {
  auto o = std::make_shared<train::UNetTrainOptions>();
  app.add_option("--images", o->images_dir, "folder of training images")->required();
  app.add_option("--masks", o->masks_dir, "folder of masks")->required();
  app.add_option("--val-images", o->val_images_dir, "folder of validation images");
  app.add_option("--val-masks", o->val_masks_dir, "folder of validation masks");
  app.add_option("--split", o->split, "train:val[:test] ratio")->capture_default_str();
  app.add_option("--seed", o->seed, "seed")->capture_default_str();
  add_out_option(app, o->out_dir, "run folder");
  app.add_option("--features", o->features, "UNet widths")->capture_default_str();
  app.add_option("--input-size", o->input_size, "UNet input side (GlomSAM img_size / 2)")->capture_default_str();
  app.add_option("--epochs", o->epochs, "epochs")->capture_default_str();
  app.add_option("--batch-size", o->batch_size, "batch size")->capture_default_str();
  app.add_option("--lr", o->lr, "Adam learning rate")->capture_default_str();
  app.add_option("--patience", o->patience, "early stopping patience (0 = off)")->capture_default_str();
  app.add_option("--max-batches", o->max_batches_per_epoch, "cap batches per epoch (0 = all)")->capture_default_str();
  add_distributed_options(app, o->distributed);
  return [o]() {
    print_summary(train::train_unet(*o));
    return 0;
  };
}

NEPHRO_COMMAND("glomsam", "train", "train GlomSAM on image/mask folders", setup_train);
NEPHRO_COMMAND("glomsam", "train-unet", "train the UNet rough-mask generator", setup_train_unet);

}  // namespace
}  // namespace nephroseg::cli

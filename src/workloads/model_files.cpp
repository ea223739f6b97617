#include "nephroseg/workloads/model_files.h"

namespace nephroseg::workloads {

const std::vector<OfficialCheckpoint>& official_checkpoints() {
  static const std::vector<OfficialCheckpoint> table = {
      {"dinov2_vitg14_pretrain.pth", "dinov2", "vitg14"},
      {"dinov2_vitl14_pretrain.pth", "dinov2", "vitl14"},
      {"dinov2_vitb14_pretrain.pth", "dinov2", "vitb14"},
      {"dinov2_vits14_pretrain.pth", "dinov2", "vits14"},
      {"sam_vit_l_0b3195.pth", "sam", "vit_l"},
      {"sam_vit_h_4b8939.pth", "sam", "vit_h"},
      {"sam_vit_b_01ec64.pth", "sam", "vit_b"},
      {"medsam_vit_b.pth", "medsam", "medsam"},
  };
  return table;
}

}  // namespace nephroseg::workloads

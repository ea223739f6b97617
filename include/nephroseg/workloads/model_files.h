// nephroseg/workloads/model_files.h: the one table of official checkpoint file names
// (as published; scripts and users download them under these names) and what each is.
// `nephroseg demo` picks its models from it, `nephroseg serve --models DIR` registers
// every SAM / MedSAM file of DIR by it.
#pragma once

#include <string>
#include <vector>

namespace nephroseg::workloads {

struct OfficialCheckpoint {
  std::string file;    ///< official file name, e.g. "sam_vit_b_01ec64.pth"
  std::string family;  ///< "sam" | "medsam" | "dinov2"
  std::string type;    ///< SamConfig preset ("vit_b", "medsam") or DINOv2 type ("vitg14")
};

/// Every official file name, in the order of preference within a family (the
/// authors' GBMSeg choices first: ViT-g DINOv2, ViT-L SAM).
const std::vector<OfficialCheckpoint>& official_checkpoints();

}  // namespace nephroseg::workloads

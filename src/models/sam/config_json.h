// src/models/sam/config_json.h (internal): the SAM architecture fields of a JSON
// config, shared by SamConfig's reader/writer and GlomSAM's (which embeds a SAM).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "nephroseg/core/json_config.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::sam {

/// Reads the image-encoder, prompt-encoder and mask-decoder fields (img_size ...
/// iou_head_hidden_dim; "out_chans" is accepted for prompt_embed_dim as in the
/// reference's ImageEncoderViT). Not name, pixel_mean/std, mask_threshold, preprocess.
void read_architecture(JsonConfigReader& reader, SamConfig& config);

/// Writes the same fields (under their canonical names) into `object`.
void write_architecture(nlohmann::json& object, const SamConfig& config);

}  // namespace nephroseg::sam

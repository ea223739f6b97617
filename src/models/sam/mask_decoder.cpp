#include "models/sam/mask_decoder.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>

#include <vector>

#include "models/sam/common.h"

namespace nephroseg::sam {

MLPImpl::MLPImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers,
                 bool sigmoid_output_)
    : sigmoid_output(sigmoid_output_) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i) {
    const int64_t in = i == 0 ? input_dim : hidden_dim;
    const int64_t out = i == num_layers - 1 ? output_dim : hidden_dim;
    layers->push_back(torch::nn::Linear(in, out));
  }
}

// Ref: mask_decoder.py::MLP.forward
at::Tensor MLPImpl::forward(const at::Tensor& x_in) {
  at::Tensor x = x_in;
  const size_t n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    x = layers[i]->as<torch::nn::LinearImpl>()->forward(x);
    if (i + 1 < n) x = at::relu(x);
  }
  return sigmoid_output ? at::sigmoid(x) : x;
}

MaskDecoderImpl::MaskDecoderImpl(const SamConfig& c)
    : transformer_dim(c.prompt_embed_dim), num_mask_tokens(c.num_multimask_outputs + 1) {
  const int64_t d = transformer_dim;
  transformer = register_module(
      "transformer", TwoWayTransformer(c.decoder_depth, d, c.decoder_num_heads, c.decoder_mlp_dim,
                                       c.attention_downsample_rate));
  iou_token = register_module("iou_token", torch::nn::Embedding(1, d));
  mask_tokens = register_module("mask_tokens", torch::nn::Embedding(num_mask_tokens, d));
  using torch::nn::ConvTranspose2d;
  using torch::nn::ConvTranspose2dOptions;
  output_upscaling = register_module(
      "output_upscaling",
      torch::nn::Sequential(ConvTranspose2d(ConvTranspose2dOptions(d, d / 4, 2).stride(2)),
                            LayerNorm2d(d / 4, 1e-6), torch::nn::GELU(),
                            ConvTranspose2d(ConvTranspose2dOptions(d / 4, d / 8, 2).stride(2)),
                            torch::nn::GELU()));
  output_hypernetworks_mlps = register_module("output_hypernetworks_mlps", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_mask_tokens; ++i) {
    output_hypernetworks_mlps->push_back(MLP(d, d, d / 8, 3));
  }
  iou_prediction_head = register_module(
      "iou_prediction_head", MLP(d, c.iou_head_hidden_dim, num_mask_tokens, c.iou_head_depth));
}

// Ref: mask_decoder.py::MaskDecoder.forward
std::pair<at::Tensor, at::Tensor> MaskDecoderImpl::forward(const at::Tensor& image_embeddings,
                                                           const at::Tensor& image_pe,
                                                           const at::Tensor& sparse,
                                                           const at::Tensor& dense,
                                                           bool multimask_output,
                                                           MaskDecoderDebug* debug) {
  auto [masks, iou_pred] = predict_masks(image_embeddings, image_pe, sparse, dense, debug);
  if (multimask_output) {
    return {masks.slice(1, 1), iou_pred.slice(1, 1)};
  }
  return {masks.slice(1, 0, 1), iou_pred.slice(1, 0, 1)};
}

// Ref: mask_decoder.py::MaskDecoder.predict_masks
std::pair<at::Tensor, at::Tensor> MaskDecoderImpl::predict_masks(const at::Tensor& image_embeddings,
                                                                 const at::Tensor& image_pe,
                                                                 const at::Tensor& sparse,
                                                                 const at::Tensor& dense,
                                                                 MaskDecoderDebug* debug) {
  const int64_t bs = sparse.size(0);
  at::Tensor output_tokens = at::cat({iou_token->weight, mask_tokens->weight}, 0);  // [5, D]
  output_tokens = output_tokens.unsqueeze(0).expand({bs, -1, -1});                  // [B, 5, D]
  const at::Tensor tokens = at::cat({output_tokens, sparse}, 1);                    // [B, 5+T, D]

  // One image embedding serves every prompt of the batch.
  at::Tensor src = image_embeddings.size(0) != bs
                       ? at::repeat_interleave(image_embeddings, bs, 0)
                       : image_embeddings;
  src = src + dense;                                                     // [B, D, g, g]
  const at::Tensor pos_src = at::repeat_interleave(image_pe, bs, 0);    // [B, D, g, g]
  const int64_t b = src.size(0), c = src.size(1), h = src.size(2), w = src.size(3);

  auto [hs, keys] = transformer->forward(src, pos_src, tokens);  // [B, 5+T, D], [B, g*g, D]
  const at::Tensor iou_token_out = hs.select(1, 0);                    // [B, D]
  const at::Tensor mask_tokens_out = hs.slice(1, 1, 1 + num_mask_tokens);  // [B, M, D]

  const at::Tensor image_out = keys.transpose(1, 2).reshape({b, c, h, w});  // [B, D, g, g]
  const at::Tensor upscaled = output_upscaling->forward(image_out);         // [B, D/8, 4g, 4g]
  std::vector<at::Tensor> hyper_in_list;
  for (int64_t i = 0; i < num_mask_tokens; ++i) {
    hyper_in_list.push_back(output_hypernetworks_mlps[i]->as<MLPImpl>()->forward(
        mask_tokens_out.select(1, i)));  // [B, D/8]
  }
  const at::Tensor hyper_in = at::stack(hyper_in_list, 1);  // [B, M, D/8]
  const int64_t ub = upscaled.size(0), uc = upscaled.size(1), uh = upscaled.size(2),
                uw = upscaled.size(3);
  const at::Tensor masks =
      at::matmul(hyper_in, upscaled.view({ub, uc, uh * uw})).view({ub, -1, uh, uw});  // [B, M, 4g, 4g]
  const at::Tensor iou_pred = iou_prediction_head->forward(iou_token_out);             // [B, M]
  if (debug) {
    debug->tokens_out = hs;
    debug->image_out = keys;
    debug->upscaled_embedding = upscaled;
    debug->all_mask_logits = masks;
    debug->all_iou = iou_pred;
  }
  return {masks, iou_pred};
}

}  // namespace nephroseg::sam

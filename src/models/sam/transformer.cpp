#include "models/sam/transformer.h"

#include <ATen/ATen.h>

#include <cmath>

#include "nephroseg/core/error.h"

namespace nephroseg::sam {

AttentionImpl::AttentionImpl(int64_t embedding_dim, int64_t num_heads_, int64_t downsample_rate)
    : num_heads(num_heads_) {
  const int64_t internal_dim = embedding_dim / downsample_rate;
  NEPHRO_CHECK(internal_dim % num_heads == 0, "SAM decoder attention: internal dim ",
               internal_dim, " is not divisible by num_heads ", num_heads);
  q_proj = register_module("q_proj", torch::nn::Linear(embedding_dim, internal_dim));
  k_proj = register_module("k_proj", torch::nn::Linear(embedding_dim, internal_dim));
  v_proj = register_module("v_proj", torch::nn::Linear(embedding_dim, internal_dim));
  out_proj = register_module("out_proj", torch::nn::Linear(internal_dim, embedding_dim));
}

namespace {
// [B, N, C] -> [B, heads, N, C/heads]
at::Tensor separate_heads(const at::Tensor& x, int64_t num_heads) {
  return x.reshape({x.size(0), x.size(1), num_heads, x.size(2) / num_heads}).transpose(1, 2);
}
// [B, heads, N, c] -> [B, N, heads*c]
at::Tensor recombine_heads(const at::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}
}  // namespace

// Ref: transformer.py::Attention.forward
at::Tensor AttentionImpl::forward(const at::Tensor& q_in, const at::Tensor& k_in,
                                  const at::Tensor& v_in) {
  const at::Tensor q = separate_heads(q_proj->forward(q_in), num_heads);  // [B, h, Nq, c]
  const at::Tensor k = separate_heads(k_proj->forward(k_in), num_heads);  // [B, h, Nk, c]
  const at::Tensor v = separate_heads(v_proj->forward(v_in), num_heads);  // [B, h, Nk, c]
  const int64_t c_per_head = q.size(3);
  at::Tensor attn = at::matmul(q, k.permute({0, 1, 3, 2}));  // [B, h, Nq, Nk]
  attn = attn / std::sqrt(static_cast<double>(c_per_head));
  attn = at::softmax(attn, -1);
  return out_proj->forward(recombine_heads(at::matmul(attn, v)));  // [B, Nq, D]
}

TwoWayAttentionBlockImpl::TwoWayAttentionBlockImpl(int64_t d, int64_t num_heads, int64_t mlp_dim,
                                                   int64_t rate, bool skip_first_layer_pe_)
    : skip_first_layer_pe(skip_first_layer_pe_) {
  self_attn = register_module("self_attn", Attention(d, num_heads));
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  cross_attn_token_to_image =
      register_module("cross_attn_token_to_image", Attention(d, num_heads, rate));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  mlp = register_module("mlp", MLPBlock(d, mlp_dim, Activation::kReLU));
  norm3 = register_module("norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  norm4 = register_module("norm4", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  cross_attn_image_to_token =
      register_module("cross_attn_image_to_token", Attention(d, num_heads, rate));
}

// Ref: transformer.py::TwoWayAttentionBlock.forward
std::pair<at::Tensor, at::Tensor> TwoWayAttentionBlockImpl::forward(const at::Tensor& queries_in,
                                                                    const at::Tensor& keys_in,
                                                                    const at::Tensor& query_pe,
                                                                    const at::Tensor& key_pe) {
  at::Tensor queries = queries_in, keys = keys_in;
  if (skip_first_layer_pe) {
    queries = self_attn->forward(queries, queries, queries);
  } else {
    const at::Tensor q = queries + query_pe;
    queries = queries + self_attn->forward(q, q, queries);
  }
  queries = norm1->forward(queries);

  at::Tensor q = queries + query_pe;
  at::Tensor k = keys + key_pe;
  queries = norm2->forward(queries + cross_attn_token_to_image->forward(q, k, keys));

  queries = norm3->forward(queries + mlp->forward(queries));

  q = queries + query_pe;
  k = keys + key_pe;
  keys = norm4->forward(keys + cross_attn_image_to_token->forward(k, q, queries));
  return {queries, keys};
}

TwoWayTransformerImpl::TwoWayTransformerImpl(int64_t depth, int64_t d, int64_t num_heads,
                                             int64_t mlp_dim, int64_t rate) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i) {
    layers->push_back(TwoWayAttentionBlock(d, num_heads, mlp_dim, rate, /*skip_first_layer_pe=*/i == 0));
  }
  final_attn_token_to_image =
      register_module("final_attn_token_to_image", Attention(d, num_heads, rate));
  norm_final_attn =
      register_module("norm_final_attn", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
}

// Ref: transformer.py::TwoWayTransformer.forward
std::pair<at::Tensor, at::Tensor> TwoWayTransformerImpl::forward(const at::Tensor& image_embedding,
                                                                 const at::Tensor& image_pe_in,
                                                                 const at::Tensor& point_embedding) {
  const at::Tensor image = image_embedding.flatten(2).permute({0, 2, 1});  // [B, h*w, D]
  const at::Tensor image_pe = image_pe_in.flatten(2).permute({0, 2, 1});   // [B, h*w, D]
  at::Tensor queries = point_embedding, keys = image;
  for (const auto& layer : *layers) {
    std::tie(queries, keys) =
        layer->as<TwoWayAttentionBlockImpl>()->forward(queries, keys, point_embedding, image_pe);
  }
  const at::Tensor q = queries + point_embedding;
  const at::Tensor k = keys + image_pe;
  queries = norm_final_attn->forward(queries + final_attn_token_to_image->forward(q, k, keys));
  return {queries, keys};
}

}  // namespace nephroseg::sam

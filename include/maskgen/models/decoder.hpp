#pragma once
// The decoder layer: one skeleton for every family, driven by the layer's LayerSpec
// (models/layer_spec.hpp). Tokens are packed (no pads): x is [tokens, hidden], and each token's
// keys and values go to its row of the cache before attention reads them.
//
//   h = RMSNorm(x);  a = o_proj(attention(RoPE(norm(q_proj h)), RoPE(norm(k_proj h)), v_proj h))
//   x += RMSNorm(a) * residual_scale
//   h = RMSNorm(x);  m = down_proj(act(gate_proj h) * up_proj h)    (or the mixture of experts)
//   x += RMSNorm(m) * residual_scale
// where the norm before a block (h = x without it: OLMo 2) and the norm of its output (a and m as
// they are: Llama) are the spec's NormPlacement, act is silu or GeLU-tanh, and residual_scale is 1
// but for Granite. A sparse layer's MLP is the mixture of experts (ops/moe.hpp): each token's
// MLP is the weighted sum of the k experts its router picks.

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "../batch.hpp"
#include "../kv/cache.hpp"
#include "../model_config.hpp"
#include "../ops/attention.hpp"
#include "../ops/matmul.hpp"
#include "../ops/moe.hpp"
#include "../ops/rms_norm.hpp"
#include "../ops/rope.hpp"
#include "../ops/activation.hpp"
#include "../ops/weights.hpp"
#include "layer_spec.hpp"

namespace maskgen {

// The weights of one decoder layer.
template <class Scalar>
struct DecoderWeights {
  ops::Vector<Scalar> input_norm;              // [hidden] before attention, or empty (NormPlacement::After)
  ops::Vector<Scalar> attention_out_norm;      // [hidden] of attention's output, or empty (NormPlacement::Before)
  ops::WeightMatrix q_proj;               // [heads * head_dim, hidden]
  ops::WeightMatrix k_proj, v_proj;       // [kv_heads * head_dim, hidden]
  ops::WeightMatrix o_proj;               // [hidden, heads * head_dim]
  ops::Vector<Scalar> q_bias, k_bias, v_bias, o_bias;  // empty where the spec has none
  ops::Vector<Scalar> q_norm, k_norm;          // [head_dim] (QkNorm::PerHead) or [heads * head_dim],
                                               // [kv_heads * head_dim] (QkNorm::Projection), else empty
  ops::Vector<Scalar> mlp_norm;                // [hidden] before the MLP, or empty (NormPlacement::After)
  ops::Vector<Scalar> mlp_out_norm;            // [hidden] of the MLP's output, or empty (NormPlacement::Before)
  ops::WeightMatrix gate_proj, up_proj;   // [intermediate, hidden]       (dense layers)
  ops::WeightMatrix down_proj;            // [hidden, intermediate]
  ops::Vector<Scalar> sinks;                   // [heads] LayerSpec::attention_sinks, else empty
  ops::WeightMatrix router;               // [experts, hidden]             (sparse layers)
  ops::Vector<Scalar> router_bias;             // [experts] or empty
  std::vector<ops::ExpertWeights<Scalar>> experts;  // [experts]
};

// The intermediate tensors of one forward pass, reused by every layer: a prefill's are large,
// and memory allocated anew for each layer would be mapped and zeroed again each time.
template <class Scalar>
struct Activations {
  ops::Matrix<Scalar> h;         // [tokens, hidden] a block's normed input
  ops::Matrix<Scalar> q, k, v;   // [tokens, heads * head_dim], [tokens, kv_heads * head_dim] twice
  ops::Matrix<Scalar> attended;  // [tokens, heads * head_dim]
  ops::Matrix<Scalar> gate, up;  // [tokens, intermediate]
  ops::Matrix<Scalar> out;       // [tokens, hidden] a block's output
  ops::Matrix<Scalar> router;    // [tokens, experts] the router's logits
  ops::MoeScratch<Scalar> moe;   // the routed tokens of one expert
};

// What every layer of one forward pass shares.
template <class Scalar, KeyValueCache Cache>
struct DecoderPass {
  const ModelConfig& config;
  const PackedBatch& batch;
  std::span<const QuerySpan> spans;    // [tokens] each token's cache row and keys seen
  const ops::RopeTable<Scalar>& rope;        // [tokens] each token's rotation
  const ops::RopeTable<Scalar>* local_rope;  // [tokens] in layers with LayerSpec::local_rope (Gemma 3), or null
  Cache& cache;
  int threads;
  Activations<Scalar>& a;
};

namespace detail {

// y = x · Wᵀ + bias.
template <class Scalar>
void project(const ops::Matrix<Scalar>& x, const ops::WeightMatrix& weight, const ops::Vector<Scalar>& bias,
             ops::Matrix<Scalar>& y, int threads) {
  ops::matmul_transposed(x, weight, y, threads);
  if (bias.size() > 0) y.rowwise() += bias.transpose();
}

// RMSNorm of every head of every token.  x: [tokens, heads * head_dim]
template <class Scalar>
void norm_heads(ops::Matrix<Scalar>& x, const ops::Vector<Scalar>& weight, std::int64_t head_dim, double eps, int threads) {
  Eigen::Map<ops::Matrix<Scalar>> heads(x.data(), x.rows() * (x.cols() / head_dim), head_dim);
  ops::rms_norm(heads, weight, eps, heads, threads);
}

// Self-attention of layer l.  h: [tokens, hidden] -> p.a.out [tokens, hidden]
template <class Scalar, class Cache>
const ops::Matrix<Scalar>& self_attention(std::size_t l, const LayerSpec& spec, const DecoderWeights<Scalar>& w,
                                          const ops::Matrix<Scalar>& h, DecoderPass<Scalar, Cache>& p) {
  const ModelConfig& c = p.config;
  Activations<Scalar>& a = p.a;
  project(h, w.q_proj, w.q_bias, a.q, p.threads);  // [tokens, heads * head_dim]
  project(h, w.k_proj, w.k_bias, a.k, p.threads);  // [tokens, kv_heads * head_dim]
  project(h, w.v_proj, w.v_bias, a.v, p.threads);  // [tokens, kv_heads * head_dim]
  if (spec.qk_norm == QkNorm::PerHead) {  // before RoPE
    norm_heads(a.q, w.q_norm, c.head_dim, c.rms_norm_eps, p.threads);
    norm_heads(a.k, w.k_norm, c.head_dim, c.rms_norm_eps, p.threads);
  } else if (spec.qk_norm == QkNorm::Projection) {
    ops::rms_norm(a.q, w.q_norm, c.rms_norm_eps, a.q, p.threads);
    ops::rms_norm(a.k, w.k_norm, c.rms_norm_eps, a.k, p.threads);
  }
  if (spec.rope) {
    const ops::RopeTable<Scalar>& rope = spec.local_rope ? *p.local_rope : p.rope;
    ops::apply_rope(a.q, rope, c.head_dim, p.threads);
    ops::apply_rope(a.k, rope, c.head_dim, p.threads);
  }
  for (std::size_t r = 0; r < p.batch.rows(); ++r) {
    const auto first = static_cast<Eigen::Index>(p.batch.row_offsets[r]);
    p.cache.append(l, p.batch.cache_rows[r], a.k.row(first).data(), a.v.row(first).data(), p.batch.row_length(r));
  }
  const std::optional<std::size_t> window =
      spec.window ? std::optional<std::size_t>(static_cast<std::size_t>(*spec.window)) : std::nullopt;
  ops::attend(a.q, p.spans, p.cache, l, static_cast<std::size_t>(c.num_heads), static_cast<std::size_t>(c.num_kv_heads),
              static_cast<std::size_t>(c.head_dim), a.attended, p.threads, window, spec.attention_scale,
              spec.attention_softcap, spec.attention_sinks ? w.sinks.data() : nullptr);
  project(a.attended, w.o_proj, w.o_bias, a.out, p.threads);  // [tokens, hidden]
  return a.out;
}

// The gated MLP (SwiGLU or GeGLU), or the mixture of experts.  h: [tokens, hidden] -> a.out [tokens, hidden]
template <class Scalar>
const ops::Matrix<Scalar>& mlp(const LayerSpec& spec, const ModelConfig& c, const DecoderWeights<Scalar>& w,
                               const ops::Matrix<Scalar>& h, int threads, Activations<Scalar>& a) {
  if (spec.sparse_mlp) {
    project(h, w.router, w.router_bias, a.router, threads);  // [tokens, experts]
    const ops::Routing<Scalar> routing =
        ops::route(a.router, static_cast<std::size_t>(c.moe->experts_per_token), c.moe->normalize_top_k);
    ops::mixture_of_experts(h, routing, std::span<const ops::ExpertWeights<Scalar>>(w.experts), spec.activation, a.out,
                            threads, a.moe);
    return a.out;
  }
  ops::matmul_transposed(h, w.gate_proj, a.gate, threads);  // [tokens, intermediate]
  ops::matmul_transposed(h, w.up_proj, a.up, threads);      // [tokens, intermediate]
  ops::gated_activation(a.gate, a.up, spec.activation, threads);
  ops::matmul_transposed(a.gate, w.down_proj, a.out, threads);  // [tokens, hidden]
  return a.out;
}

// A block's input: norm(x) in h, or x itself where the spec normalizes only the output.
template <class Scalar>
const ops::Matrix<Scalar>& block_input(const LayerSpec& spec, const ops::Vector<Scalar>& norm, const ops::Matrix<Scalar>& x,
                                       double eps, ops::Matrix<Scalar>& h, int threads) {
  if (spec.norms == NormPlacement::After) return x;
  ops::rms_norm(x, norm, eps, h, threads);
  return h;
}

// x += norm_out(out) * residual_scale (the norm where the spec has one); out may be normed in place.
template <class Scalar>
void add_residual(const LayerSpec& spec, const ops::Vector<Scalar>& norm_out, ops::Matrix<Scalar>& out, double eps,
                  ops::Matrix<Scalar>& x, int threads) {
  if (spec.norms != NormPlacement::Before) ops::rms_norm(out, norm_out, eps, out, threads);
  if (spec.residual_scale == 1.0) {
    x += out;
  } else {
    x += out * static_cast<Scalar>(spec.residual_scale);
  }
}

}  // namespace detail

// One decoder layer, as the architecture reads.  x: [tokens, hidden], updated in place.
template <class Scalar, class Cache>
void decoder_layer(std::size_t l, const LayerSpec& spec, const DecoderWeights<Scalar>& w, ops::Matrix<Scalar>& x,
                   DecoderPass<Scalar, Cache>& p) {
  const double eps = p.config.rms_norm_eps;
  Activations<Scalar>& a = p.a;
  const auto& attention_in = detail::block_input(spec, w.input_norm, x, eps, a.h, p.threads);
  detail::self_attention(l, spec, w, attention_in, p);             // a.out
  detail::add_residual(spec, w.attention_out_norm, a.out, eps, x, p.threads);
  const auto& mlp_in = detail::block_input(spec, w.mlp_norm, x, eps, a.h, p.threads);
  detail::mlp(spec, p.config, w, mlp_in, p.threads, a);             // a.out
  detail::add_residual(spec, w.mlp_out_norm, a.out, eps, x, p.threads);
}

}  // namespace maskgen

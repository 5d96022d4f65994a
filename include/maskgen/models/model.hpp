#pragma once
// Model<Scalar>: a decoder-only transformer of a registered family (models/registry.hpp: Llama,
// Mistral, Qwen, SmolLM3, Gemma, Phi-3, OLMo, Granite, and the mixture-of-experts Qwen3-MoE,
// Mixtral, OLMoE and gpt-oss), loaded from a Hugging Face folder and immutable afterwards, so
// one model can serve many threads: the embedding, the decoder layers (models/decoder.hpp, each
// as its family's LayerSpec says), the final norm and the output head.
//
// The public interface is padded (input_ids + attention_mask, as tokenizers return them); inside,
// each row is reduced to its run of real tokens, the rows' tokens are packed into one matrix for
// the projections, and attention runs over per-row caches of real tokens. Positions come from the
// mask here, inside the forward pass: a real token's position is the number of real tokens before
// it in its row (plus what the row's cache already holds).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "../batch.hpp"
#include "../config.hpp"
#include "../detail/parallel.hpp"
#include "../error.hpp"
#include "../kv/cache.hpp"
#include "../ops/attention.hpp"
#include "../ops/matmul.hpp"
#include "../ops/rms_norm.hpp"
#include "../ops/rope.hpp"
#include "../ops/activation.hpp"
#include "../ops/weights.hpp"
#include "../padding.hpp"
#include "../safetensors.hpp"
#include "../weights/reader.hpp"
#include "decoder.hpp"
#include "registry.hpp"

namespace maskgen {

// Which positions get logits.
enum class LogitsFor {
  Last,  // each row's last real token: [batch, vocab], whichever side the row was padded on
  All,   // every position: [batch * seq, vocab], row b * seq + t; pad positions hold zeros
};

// How Model::load keeps the weights of the projections and the output head: AsStored (the
// checkpoint's own elements, F32, BF16, F16, read in place from the mapped file), Int8
// (quantized at load: symmetric int8, one float scale per output row, a copy) or Int4 (quantized
// at load: 4-bit codes in groups along k with a float16 scale and a zero each, LoadOptions::int4).
using WeightFormat = weights::Quantization;

struct LoadOptions {
  WeightFormat weights = WeightFormat::AsStored;  // see WeightFormat
  weights::Int4Options int4{};                    // how WeightFormat::Int4 quantizes
};

struct ForwardOptions {
  LogitsFor logits = LogitsFor::Last;  // which positions get logits
  int num_threads = 0;                 // threads for the kernels; 0 uses every core
};

// A RoPE's inverse frequencies: [rotary_dim / 2] each; long_context only for LongRoPE.
struct RopeFrequencies {
  std::vector<double> base, long_context;

  RopeFrequencies() = default;
  RopeFrequencies(const RopeConfig& rope, std::int64_t head_dim)
      : base(rope.inverse_frequencies(head_dim)),
        long_context(rope.type == RopeType::LongRope ? rope.inverse_frequencies(head_dim, true) : std::vector<double>{}) {}
};

template <class Scalar>
class Model {
 public:
  using scalar_type = Scalar;
  using cache_type = KVCache<Scalar>;
  using Matrix = ops::Matrix<Scalar>;                      // row-major
  using Vector = ops::Vector<Scalar>;

  // Reads config.json and the safetensors weights. The matrices stay in the checkpoint's dtype
  // (F32, BF16, F16; F64 is converted to Scalar). The projections and the output head are
  // permuted once into the matmul kernel's panels (ops::pack_panels), which replace the mapped
  // file's pages as they are written: a model costs its file size once, shared by every copy and
  // thread (the packing costs load time: bench/RESULTS.md has figures). The embedding table is
  // read in place from the memory-mapped file (from the panels when it is also the head).
  // Kernels widen 16-bit elements to Scalar exactly, so results equal those of the float
  // widening of the same checkpoint. Norm weights and biases are converted to Scalar. With WeightFormat::Int8 the projections and the output head are
  // quantized at load instead.
  static Model load(const std::filesystem::path& dir, const LoadOptions& options = {});

  // The element type the projections are held in (the checkpoint's, or I8).
  ops::WeightType weight_type() const { return layers_.front().q_proj.type; }

  const ModelConfig& config() const { return config_; }

  // An empty cache for `rows` rows.
  KVCache<Scalar> make_cache(std::size_t rows) const { return KVCache<Scalar>(config_, rows); }

  // Logits of a padded batch. With a cache, each row's real tokens continue that cache row (the
  // cache must have as many rows as the batch); without one, each row starts fresh.
  Matrix forward(const TokenMatrix& input_ids, const TokenMatrix& attention_mask,
                 KVCache<Scalar>* cache = nullptr, const ForwardOptions& options = {}) const {
    validate_batch(input_ids, attention_mask, config_.vocab_size);
    const PackedBatch batch = pack(input_ids, attention_mask);
    std::optional<KVCache<Scalar>> local;
    if (!cache) cache = &local.emplace(make_cache(batch.rows()));
    if (cache->rows() != batch.rows()) {
      throw argument_error(detail::cat("cache has ", cache->rows(), " rows but the batch has ", batch.rows()));
    }
    const Matrix packed = forward_packed(batch, *cache, options);
    if (options.logits == LogitsFor::Last) return packed;
    return scatter_to_padded(packed, attention_mask);  // pads' logits stay zero
  }

  // Logits of a padding-free batch: [rows, vocab] (LogitsFor::Last) or [tokens, vocab] (All).
  // Appends every row's tokens to its cache row.
  Matrix forward_packed(const PackedBatch& batch, KVCache<Scalar>& cache, const ForwardOptions& options = {}) const {
    const int threads = detail::resolve_thread_count(options.num_threads, "ForwardOptions::num_threads");
    const std::vector<QuerySpan> spans = query_spans(batch, cache);  // validates lengths first
    std::vector<std::int32_t> positions(spans.size());
    for (std::size_t t = 0; t < spans.size(); ++t) positions[t] = static_cast<std::int32_t>(spans[t].keys - 1);
    const ops::RopeTable<Scalar> rope = rope_table(config_.rope, rope_frequencies_, batch, positions);
    std::optional<ops::RopeTable<Scalar>> local_rope;
    if (config_.local_rope) local_rope = rope_table(*config_.local_rope, local_rope_frequencies_, batch, positions);

    Matrix x = embed(batch.tokens);  // [tokens, hidden]
    Activations<Scalar> a;
    DecoderPass<Scalar, KVCache<Scalar>> pass{config_, batch, spans, rope, local_rope ? &*local_rope : nullptr,
                                              cache, threads, a};
    for (std::size_t l = 0; l < layers_.size(); ++l) decoder_layer(l, specs_[l], layers_[l], x, pass);
    for (std::size_t r = 0; r < batch.rows(); ++r) cache.commit(batch.cache_rows[r], batch.row_length(r));

    if (options.logits == LogitsFor::Last) {
      Matrix last(static_cast<Eigen::Index>(batch.rows()), x.cols());  // [rows, hidden]
      for (std::size_t r = 0; r < batch.rows(); ++r)
        last.row(static_cast<Eigen::Index>(r)) = x.row(static_cast<Eigen::Index>(batch.row_offsets[r + 1] - 1));
      return logits(last, threads);
    }
    return logits(x, threads);
  }

 private:
  // The rotations of a forward's tokens. LongRoPE decides per row: a row whose last position in
  // this call reaches past original_max_position_embeddings turns by the long factors (as
  // transformers does for a forward of that row alone).  -> [tokens, rotary_dim / 2]
  static ops::RopeTable<Scalar> rope_table(const RopeConfig& rope, const RopeFrequencies& f, const PackedBatch& batch,
                                           std::span<const std::int32_t> positions) {
    if (rope.type != RopeType::LongRope) return ops::RopeTable<Scalar>(positions, f.base, rope.attention_factor);
    std::vector<char> long_row(positions.size());
    for (std::size_t r = 0; r < batch.rows(); ++r) {
      const std::size_t first = batch.row_offsets[r], end = batch.row_offsets[r + 1];
      if (first == end) continue;
      std::int64_t reach = positions[end - 1];  // the last position this forward covers for the row
      if (!batch.prefill_ends.empty() && batch.prefill_ends[r] > 0) {
        reach = std::max(reach, static_cast<std::int64_t>(batch.prefill_ends[r]) - 1);
      }
      const bool use_long = rope.uses_long_factor(reach);
      std::fill(long_row.begin() + static_cast<std::ptrdiff_t>(first), long_row.begin() + static_cast<std::ptrdiff_t>(end),
                use_long);
    }
    return ops::RopeTable<Scalar>(
        positions, [&](std::size_t t) -> const std::vector<double>& { return long_row[t] ? f.long_context : f.base; },
        rope.attention_factor);
  }

  // tokens -> [tokens, hidden], times the family's embedding scale.
  Matrix embed(std::span<const std::int32_t> tokens) const {
    Matrix x(static_cast<Eigen::Index>(tokens.size()), config_.hidden_size);
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      ops::weight_row(embed_tokens_, static_cast<std::size_t>(tokens[t]), x.row(static_cast<Eigen::Index>(t)).data());
    }
    if (config_.embedding_scale != 1.0) x *= static_cast<Scalar>(config_.embedding_scale);
    return x;
  }

  // Final norm and output head, then the family's soft-cap or divisor.  x: [n, hidden] -> [n, vocab]
  Matrix logits(const Matrix& x, int threads) const {
    Matrix h(x.rows(), x.cols());
    ops::rms_norm(x, final_norm_, config_.rms_norm_eps, h, threads);
    Matrix out;
    ops::matmul_transposed(h, lm_head_ ? *lm_head_ : embed_tokens_, out, threads);
    if (config_.logits_divisor != 1.0) out /= static_cast<Scalar>(config_.logits_divisor);
    if (config_.final_softcap) ops::softcap(out, *config_.final_softcap, threads);
    return out;
  }

  // Where each packed token reads: its cache row, and how many keys it sees (its position + 1).
  // Refuses contexts the model cannot attend over correctly.
  std::vector<QuerySpan> query_spans(const PackedBatch& batch, const KVCache<Scalar>& cache) const {
    using detail::cat;
    if (batch.row_offsets.size() != batch.rows() + 1 || batch.row_offsets.back() != batch.tokens.size()) {
      throw argument_error("PackedBatch: row_offsets must hold rows + 1 offsets ending at the token count");
    }
    if (!batch.prefill_ends.empty() && batch.prefill_ends.size() != batch.rows()) {
      throw argument_error(cat("PackedBatch: prefill_ends holds ", batch.prefill_ends.size(), " values for ",
                               batch.rows(), " rows (or must be empty)"));
    }
    if (cache.num_layers() != layers_.size() || cache.kv_heads() != static_cast<std::size_t>(config_.num_kv_heads) ||
        cache.head_dim() != static_cast<std::size_t>(config_.head_dim)) {
      throw argument_error(cat("cache was made for ", cache.num_layers(), " layers of ", cache.kv_heads(), " x ",
                               cache.head_dim(), " KV heads; this model has ", layers_.size(), " layers of ",
                               config_.num_kv_heads, " x ", config_.head_dim, " (use Model::make_cache)"));
    }
    std::vector<QuerySpan> spans;
    spans.reserve(batch.tokens.size());
    for (std::size_t r = 0; r < batch.rows(); ++r) {
      const std::size_t row = batch.cache_rows[r];
      if (row >= cache.rows()) throw argument_error(cat("PackedBatch row ", r, " names cache row ", row, " of ", cache.rows()));
      const std::size_t before = cache.length(row), total = before + batch.row_length(r);
      if (total > static_cast<std::size_t>(config_.max_position_embeddings)) {
        throw argument_error(cat("row ", r, " would hold ", total, " tokens but the model's context is ",
                                 config_.max_position_embeddings, " (max_position_embeddings)"));
      }
      for (std::size_t i = 0; i < batch.row_length(r); ++i) {
        const std::int32_t id = batch.tokens[batch.row_offsets[r] + i];
        detail::check_vocabulary_id(id, config_.vocab_size, "PackedBatch row ", r, " token ", i);
        if (config_.image_token_id && id == *config_.image_token_id) {
          throw argument_error(cat("PackedBatch row ", r, " token ", i, " is the image token ", id,
                                   " (image_token_index): maskgen runs this model's text part only, without images"));
        }
        spans.push_back({row, before + i + 1});
      }
    }
    return spans;
  }

  ModelConfig config_;
  RopeFrequencies rope_frequencies_;         // of config_.rope
  RopeFrequencies local_rope_frequencies_;   // of config_.local_rope, where set
  ops::WeightMatrix embed_tokens_;           // [vocab, hidden], as stored, row-major in place (in
                                             // panels when it is also the head); never quantized
  std::vector<LayerSpec> specs_;                  // [layers] what each layer does (ModelConfig::layer)
  std::vector<DecoderWeights<Scalar>> layers_;   // [layers]
  Vector final_norm_;                        // [hidden]
  std::optional<ops::WeightMatrix> lm_head_; // [vocab, hidden]; unset when tied and not quantized
};


namespace detail {

// The router and experts of sparse layer l, in whichever layout the checkpoint holds them
// (TensorNames): one tensor per expert and projection, transformers 5's fused [experts, 2I, H] and
// [experts, H, I], or gpt-oss's transposed, interleaved [experts, H, 2I] and [experts, I, H]. Each
// expert's matrices are read from its own part of the file. The router stays as stored whatever
// the WeightFormat: a rounded router could send a token to other experts.
template <class Scalar>
void load_experts(const weights::WeightReader<Scalar>& read, const TensorNames& names, const ModelConfig& c,
                  std::int64_t l, DecoderWeights<Scalar>& w) {
  using weights::TensorPart;
  const MoeConfig& m = *c.moe;
  const std::int64_t experts = m.experts, inter = m.expert_intermediate_size, hidden = c.hidden_size;
  const std::string gate_up = names.layer(l, names.fused_gate_up), down = names.layer(l, names.fused_down);
  const std::string_view router =
      !names.fused_router.empty() && read.contains(gate_up) ? names.fused_router : names.router;
  w.router = read.matrix(names.layer(l, router), experts, hidden, weights::Quantization::AsStored);
  if (m.router_bias) w.router_bias = read.vector(names.layer(l, TensorNames::bias_of(router)), experts);
  w.experts.resize(static_cast<std::size_t>(experts));
  if (names.fused_transposed_interleaved) {
    const std::int64_t gate_up_shape[] = {experts, hidden, 2 * inter}, down_shape[] = {experts, inter, hidden};
    ops::Vector<Scalar> gate_up_bias, down_bias;
    if (m.expert_bias) {
      const std::int64_t gate_up_bias_shape[] = {experts, 2 * inter}, down_bias_shape[] = {experts, hidden};
      gate_up_bias = read.elements(gate_up + "_bias", gate_up_bias_shape);
      down_bias = read.elements(down + "_bias", down_bias_shape);
    }
    for (std::int64_t e = 0; e < experts; ++e) {
      ops::ExpertWeights<Scalar>& x = w.experts[static_cast<std::size_t>(e)];
      if (auto gate = read.mxfp4_rows(gate_up, experts, 2 * inter, hidden, e, 0, 2, inter)) {
        // MXFP4 (gpt-oss as published): [experts, 2 inter, hidden] blocks, gate at even rows, up at odd
        auto rows = [&](const std::string& name, std::int64_t out, std::int64_t in, std::int64_t first, std::int64_t step,
                        std::int64_t count) {
          auto m = read.mxfp4_rows(name, experts, out, in, e, first, step, count);
          if (!m) throw format_error(detail::cat("tensor ", name, "_blocks is missing; ", gate_up, "_blocks is MXFP4"));
          return std::move(*m);
        };
        x.gate = std::move(*gate);
        x.up = rows(gate_up, 2 * inter, hidden, 1, 2, inter);
        x.down = rows(down, hidden, inter, 0, 1, hidden);
      } else {
        const std::int64_t slab = e * hidden * 2 * inter;  // [hidden, 2 inter]: gate at even columns, up at odd
        x.gate = read.matrix_part(gate_up, gate_up_shape, TensorPart{slab, inter, hidden, 2, 2 * inter});
        x.up = read.matrix_part(gate_up, gate_up_shape, TensorPart{slab + 1, inter, hidden, 2, 2 * inter});
        x.down = read.matrix_part(down, down_shape, TensorPart{e * inter * hidden, hidden, inter, 1, hidden});
      }
      if (m.expert_bias) {
        x.gate_bias.resize(inter);
        x.up_bias.resize(inter);
        for (std::int64_t j = 0; j < inter; ++j) {
          x.gate_bias(j) = gate_up_bias(e * 2 * inter + 2 * j);
          x.up_bias(j) = gate_up_bias(e * 2 * inter + 2 * j + 1);
        }
        x.down_bias = down_bias.segment(e * hidden, hidden);
      }
    }
  } else if (read.contains(gate_up)) {  // transformers 5's layout
    const std::int64_t gate_up_shape[] = {experts, 2 * inter, hidden}, down_shape[] = {experts, hidden, inter};
    for (std::int64_t e = 0; e < experts; ++e) {
      ops::ExpertWeights<Scalar>& x = w.experts[static_cast<std::size_t>(e)];
      const std::int64_t slab = e * 2 * inter * hidden;  // [2 inter, hidden]: gate rows, then up rows
      x.gate = read.matrix_part(gate_up, gate_up_shape, TensorPart{slab, inter, hidden, hidden, 1});
      x.up = read.matrix_part(gate_up, gate_up_shape, TensorPart{slab + inter * hidden, inter, hidden, hidden, 1});
      x.down = read.matrix_part(down, down_shape, TensorPart{e * hidden * inter, hidden, inter, inter, 1});
    }
  } else {  // one tensor per expert and projection, as most checkpoints are published
    for (std::int64_t e = 0; e < experts; ++e) {
      ops::ExpertWeights<Scalar>& x = w.experts[static_cast<std::size_t>(e)];
      x.gate = read.matrix(names.expert(l, e, names.expert_gate), inter, hidden);
      x.up = read.matrix(names.expert(l, e, names.expert_up), inter, hidden);
      x.down = read.matrix(names.expert(l, e, names.expert_down), hidden, inter);
    }
  }
}

}  // namespace detail

template <class Scalar>
Model<Scalar> Model<Scalar>::load(const std::filesystem::path& dir, const LoadOptions& options) {
  Model model;
  model.config_ = ModelConfig::load(dir);
  const ModelConfig& c = model.config_;
  const TensorNames& names = find_family(c.model_type)->names;
  const weights::WeightReader<Scalar> read(std::make_shared<const SafetensorsCheckpoint>(SafetensorsCheckpoint::open(dir)),
                                          options.weights, options.int4, c.quantization);
  const auto hidden = c.hidden_size, inter = c.intermediate_size;
  model.rope_frequencies_ = RopeFrequencies(c.rope, c.head_dim);
  if (c.local_rope) model.local_rope_frequencies_ = RopeFrequencies(*c.local_rope, c.head_dim);
  // A norm's weight as the model scales by it: Gemma's RMSNorm multiplies by (1 + w), rounded to
  // Scalar once here as transformers rounds 1 + w before the product.
  auto norm = [&](const std::string& tensor, std::int64_t n) {
    Vector v = read.vector(tensor, n);
    if (c.norm_plus_one) v.array() += Scalar(1);
    return v;
  };
  // The embedding table is looked up a row at a time, so it stays as stored, in place; tied to the
  // output head (and not quantized for it), it is packed for the head and looked up in its panels.
  const bool head_is_embedding = c.tie_word_embeddings && options.weights == WeightFormat::AsStored;
  const std::string embed(names.embed);
  model.embed_tokens_ = head_is_embedding ? read.matrix(embed, c.vocab_size, hidden, WeightFormat::AsStored)
                                          : read.row_major(embed, c.vocab_size, hidden, WeightFormat::AsStored);
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const LayerSpec spec = c.layer(static_cast<std::size_t>(i));
    auto name = [&](std::string_view tensor) { return names.layer(i, tensor); };
    auto bias = [&](std::string_view weight) { return names.layer(i, TensorNames::bias_of(weight)); };
    DecoderWeights<Scalar> w;
    if (spec.norms != NormPlacement::After) {
      w.input_norm = norm(name(names.input_norm), hidden);
      w.mlp_norm = norm(name(names.mlp_norm), hidden);
    }
    if (spec.norms != NormPlacement::Before) {
      w.attention_out_norm = norm(name(names.attention_out_norm), hidden);
      w.mlp_out_norm = norm(name(names.mlp_out_norm), hidden);
    }
    if (names.qkv_proj.empty()) {
      w.q_proj = read.matrix(name(names.q_proj), c.q_dim(), hidden);
      w.k_proj = read.matrix(name(names.k_proj), c.kv_dim(), hidden);
      w.v_proj = read.matrix(name(names.v_proj), c.kv_dim(), hidden);
    } else {  // one tensor, rows [q | k | v], each part read from its own rows of the file
      const std::string qkv = name(names.qkv_proj);
      const std::int64_t rows = c.q_dim() + 2 * c.kv_dim();
      w.q_proj = read.matrix_rows(qkv, rows, hidden, 0, c.q_dim());
      w.k_proj = read.matrix_rows(qkv, rows, hidden, c.q_dim(), c.kv_dim());
      w.v_proj = read.matrix_rows(qkv, rows, hidden, c.q_dim() + c.kv_dim(), c.kv_dim());
    }
    w.o_proj = read.matrix(name(names.o_proj), hidden, c.q_dim());
    if (spec.qkv_bias) {
      w.q_bias = read.vector(bias(names.q_proj), c.q_dim());
      w.k_bias = read.vector(bias(names.k_proj), c.kv_dim());
      w.v_bias = read.vector(bias(names.v_proj), c.kv_dim());
    }
    if (spec.o_bias) w.o_bias = read.vector(bias(names.o_proj), hidden);
    if (spec.qk_norm == QkNorm::PerHead) {
      w.q_norm = norm(name(names.q_norm), c.head_dim);
      w.k_norm = norm(name(names.k_norm), c.head_dim);
    } else if (spec.qk_norm == QkNorm::Projection) {
      w.q_norm = norm(name(names.q_norm), c.q_dim());
      w.k_norm = norm(name(names.k_norm), c.kv_dim());
    }
    if (spec.attention_sinks) w.sinks = read.vector(name(names.sinks), c.num_heads);
    if (spec.sparse_mlp) {
      detail::load_experts(read, names, c, i, w);
    } else if (names.gate_up_proj.empty()) {
      w.gate_proj = read.matrix(name(names.gate_proj), inter, hidden);
      w.up_proj = read.matrix(name(names.up_proj), inter, hidden);
      w.down_proj = read.matrix(name(names.down_proj), hidden, inter);
    } else {  // one tensor, rows [gate | up]
      const std::string gate_up = name(names.gate_up_proj);
      w.gate_proj = read.matrix_rows(gate_up, 2 * inter, hidden, 0, inter);
      w.up_proj = read.matrix_rows(gate_up, 2 * inter, hidden, inter, inter);
      w.down_proj = read.matrix(name(names.down_proj), hidden, inter);
    }
    model.specs_.push_back(spec);
    model.layers_.push_back(std::move(w));
  }
  model.final_norm_ = norm(std::string(names.final_norm), hidden);
  if (!c.tie_word_embeddings) {
    model.lm_head_ = read.matrix(std::string(names.lm_head), c.vocab_size, hidden);
  } else if (options.weights != WeightFormat::AsStored) {  // the head is quantized, the lookup table is not
    model.lm_head_ = read.matrix(embed, c.vocab_size, hidden);
  }
  return model;
}

}  // namespace maskgen

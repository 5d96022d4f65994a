#pragma once
// The BPE model of a tokenizer.json: a vocabulary and ranked merges, applied to one pre-tokenized
// piece (a "word") at a time, exactly as Hugging Face tokenizers' BPE does it.
//
// The first symbols of a word: with a byte-level tokenizer, one per byte (the byte alphabet covers
// them all). Otherwise (SentencePiece-style files: Llama 2, Gemma) one per character, looked up in
// the vocabulary; a character without a piece becomes the pieces <0xHH> of its UTF-8 bytes when
// byte_fallback is on, else the unknown token (consecutive ones fused into one with fuse_unk),
// else nothing.
//
// Merging: while some adjacent pair has a merge, the
// pair of lowest rank is merged, the leftmost one among equals (tokenizers keeps a heap ordered
// by (rank, position); this is the same order). With ignore_merges, a word that is itself in the
// vocabulary is one token without merging (Llama 3).
//
// Byte-level pieces are kept as raw bytes: a vocabulary string such as "Ġthe" is stored as " the";
// other pieces as their UTF-8 ("▁the").
// Results of recent words are cached per thread (as tokenizers does); the cache changes no result.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "byte_level.hpp"

namespace maskgen::detail {

// Flat hash tables (open addressing, linear probing, at most half full) for the vocabulary and
// the merges: loading Gemma 3's 262,144 pieces and 514,906 merges costs some 1.5 million lookups,
// and node-based maps spend most of that on cache misses and allocations.
inline std::uint64_t mix64(std::uint64_t x) {  // MurmurHash3's finalizer
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

inline std::uint64_t hash_bytes(std::string_view s) {  // FNV-1a, then mixed
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return mix64(h ^ s.size());
}

inline std::size_t table_capacity(std::size_t n) {
  std::size_t capacity = 16;
  while (capacity < 2 * n) capacity *= 2;
  return capacity;
}

// Piece -> id, over a vector of pieces that outlives it (ids index it).
class PieceIndex {
 public:
  void build(const std::vector<std::string>* pieces) {
    pieces_ = pieces;
    slots_.assign(table_capacity(pieces->size()), Slot{0, -1});
    mask_ = slots_.size() - 1;
  }
  // False when the piece is there already.
  bool insert(std::int32_t id) {
    const std::string_view piece = (*pieces_)[static_cast<std::size_t>(id)];
    const std::uint64_t h = hash_bytes(piece);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.id < 0) {
        slot = {h, id};
        return true;
      }
      if (slot.hash == h && (*pieces_)[static_cast<std::size_t>(slot.id)] == piece) return false;
    }
  }
  std::int32_t find(std::string_view piece) const {  // -1: none
    const std::uint64_t h = hash_bytes(piece);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.id < 0) return -1;
      if (slot.hash == h && (*pieces_)[static_cast<std::size_t>(slot.id)] == piece) return slot.id;
    }
  }

 private:
  struct Slot {
    std::uint64_t hash;
    std::int32_t id;  // -1: empty
  };
  const std::vector<std::string>* pieces_ = nullptr;
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
};

// (left id, right id) -> (rank, merged id).
template <class Value>
class PairTable {
 public:
  void reserve(std::size_t n) {
    slots_.assign(table_capacity(n), Slot{empty, {}});
    mask_ = slots_.size() - 1;
  }
  void assign(std::uint64_t key, const Value& value) {  // replaces an earlier value of the key
    for (std::size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.key == empty || slot.key == key) {
        slot = {key, value};
        return;
      }
    }
  }
  const Value* find(std::uint64_t key) const {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) return &slot.value;
      if (slot.key == empty) return nullptr;
    }
  }

 private:
  static constexpr std::uint64_t empty = ~std::uint64_t{0};  // ids are below 2^31: no key is this
  struct Slot {
    std::uint64_t key;
    Value value;
  };
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
};

class BpeModel {
 public:
  struct Merge {
    std::int32_t rank;
    std::int32_t new_id;
  };

  struct Options {
    std::optional<std::int32_t> unk_id;  // the unknown token, if any
    bool fuse_unk = false;               // consecutive unknown characters give one unknown token
    bool ignore_merges = false;          // a word that is a piece is that piece (Llama 3)
    bool characters = false;             // first symbols per character, not per byte (not byte-level)
    bool byte_fallback = false;          // characters without a piece become <0xHH> pieces
  };

  // `pieces[id]` holds the piece of token `id` (raw bytes when byte-level, else UTF-8); ids without
  // a piece (added tokens) are empty and never produced by merging. `merges` holds (left, right)
  // pairs of pieces in rank order. `what` names the file in error messages.
  BpeModel(std::vector<std::string> pieces, const std::vector<std::pair<std::string, std::string>>& merges,
           const Options& options, std::string_view what)
      : pieces_(std::move(pieces)), options_(options) {
    const auto n = static_cast<std::int64_t>(pieces_.size());
    if (options_.unk_id && (*options_.unk_id < 0 || *options_.unk_id >= n)) {
      throw format_error(cat(what, ": unk_token id ", *options_.unk_id, " is outside the vocabulary"));
    }
    byte_ids_.fill(-1);
    ids_.build(&pieces_);
    for (std::size_t id = 0; id < pieces_.size(); ++id) {
      const std::string_view piece = pieces_[id];
      if (piece.empty()) continue;
      if (!ids_.insert(static_cast<std::int32_t>(id))) {
        throw format_error(cat(what, ": model.vocab lists the piece ", options_.characters ? piece : byte_level::to_chars(piece),
                               " twice"));
      }
      if (!options_.characters && piece.size() == 1) byte_ids_[static_cast<unsigned char>(piece[0])] = static_cast<std::int32_t>(id);
    }
    if (options_.characters && options_.byte_fallback) {
      // Every byte needs its piece: a file without them would silently drop characters.
      for (int b = 0; b < 256; ++b) {
        const std::string piece = byte_piece(static_cast<unsigned char>(b));
        const std::int32_t found = ids_.find(piece);
        if (found < 0) {
          throw format_error(cat(what, ": model.byte_fallback is true but model.vocab has no piece ", piece,
                                 " (byte fallback needs all 256 pieces <0x00> to <0xFF>)"));
        }
        byte_ids_[static_cast<std::size_t>(b)] = found;
      }
    }
    merges_.reserve(merges.size());
    std::string joined;
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& [a, b] = merges[rank];
      const std::int32_t left = ids_.find(a), right = ids_.find(b);
      joined.assign(a).append(b);
      const std::int32_t result = ids_.find(joined);
      if (left < 0 || right < 0 || result < 0) {
        throw format_error(cat(what, ": merge ", rank, " (", options_.characters ? a : byte_level::to_chars(a), " ",
                               options_.characters ? b : byte_level::to_chars(b),
                               ") names a token that is not in the vocabulary"));
      }
      // A pair listed twice keeps its later rank, as tokenizers does.
      merges_.assign(key(left, right), Merge{static_cast<std::int32_t>(rank), result});
    }
  }

  // "<0x0A>": the piece byte fallback uses for a byte (Rust's format!("<{:#04X}>", b)).
  static std::string byte_piece(unsigned char b) {
    static constexpr char hex[] = "0123456789ABCDEF";
    return std::string{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
  }

  // The vocabulary index points into pieces_: a model is neither copied nor moved (share it).
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one word (raw bytes, not empty) to `out`.
  void encode_word(std::string_view word, std::vector<std::int32_t>& out) const {
    if (options_.ignore_merges) {
      if (const std::int32_t id = ids_.find(word); id >= 0) {
        out.push_back(id);
        return;
      }
    }
    if (word.size() <= max_cached_word) {
      Cache& cache = cache_for_thread();
      if (const auto it = cache.words.find(word); it != cache.words.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
      const std::size_t first = out.size();
      merge_word(word, out);
      if (cache.words.size() >= cache_capacity) cache.words.clear();
      cache.words.emplace(std::string(word), std::vector<std::int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
      return;
    }
    merge_word(word, out);
  }

  std::optional<std::int32_t> find(std::string_view bytes) const {
    const std::int32_t id = ids_.find(bytes);
    return id < 0 ? std::nullopt : std::optional<std::int32_t>(id);
  }

 private:
  static constexpr std::size_t max_cached_word = 256;  // longer words are merged every time
  static constexpr std::size_t cache_capacity = 20000;

  static std::uint64_t key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }

  struct Symbol {
    std::int32_t id;
    std::int32_t prev, next;  // neighbours in the word, -1 at either end
    bool alive;
  };
  struct Candidate {  // a pair (pos, its next symbol) that has a merge
    std::int32_t rank, pos, new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };

  void merge_word(std::string_view word, std::vector<std::int32_t>& out) const {
    thread_local std::vector<Symbol> symbols;
    thread_local std::vector<Candidate> heap;
    symbols.clear();
    heap.clear();
    bool previous_unknown = false;
    const auto unknown = [&] {  // a symbol outside the vocabulary: the unknown token, fused if asked
      if (!options_.unk_id) return;
      if (!(options_.fuse_unk && previous_unknown)) symbols.push_back({*options_.unk_id, 0, 0, true});
      previous_unknown = true;
    };
    if (!options_.characters) {
      for (const char c : word) {
        const std::int32_t id = byte_ids_[static_cast<unsigned char>(c)];
        if (id >= 0) {
          symbols.push_back({id, 0, 0, true});
          previous_unknown = false;
        } else {
          unknown();
        }
      }
    } else {
      for (std::size_t i = 0; i < word.size();) {
        std::size_t next = i + 1;
        while (next < word.size() && (static_cast<unsigned char>(word[next]) & 0xC0) == 0x80) ++next;
        if (const std::int32_t id = ids_.find(word.substr(i, next - i)); id >= 0) {
          symbols.push_back({id, 0, 0, true});
          previous_unknown = false;
        } else if (options_.byte_fallback) {  // every byte has its piece (checked at load)
          for (std::size_t k = i; k < next; ++k) {
            symbols.push_back({byte_ids_[static_cast<unsigned char>(word[k])], 0, 0, true});
          }
          previous_unknown = false;
        } else {
          unknown();
        }
        i = next;
      }
    }
    const auto n = static_cast<std::int32_t>(symbols.size());
    for (std::int32_t i = 0; i < n; ++i) {
      symbols[static_cast<std::size_t>(i)].prev = i - 1;
      symbols[static_cast<std::size_t>(i)].next = i + 1 < n ? i + 1 : -1;
    }
    const auto push = [&](std::int32_t pos) {
      const Symbol& s = symbols[static_cast<std::size_t>(pos)];
      if (s.next < 0) return;
      const Merge* merge = merges_.find(key(s.id, symbols[static_cast<std::size_t>(s.next)].id));
      if (merge == nullptr) return;
      heap.push_back({merge->rank, pos, merge->new_id});
      std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    };
    for (std::int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
      const Candidate top = heap.back();
      heap.pop_back();
      Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = symbols[static_cast<std::size_t>(left.next)];
      const Merge* merge = merges_.find(key(left.id, right.id));
      if (merge == nullptr || merge->new_id != top.new_id) continue;  // an outdated candidate
      left.id = top.new_id;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = top.pos;
      if (left.prev >= 0) push(left.prev);
      push(top.pos);
    }
    for (const Symbol& s : symbols) {
      if (s.alive) out.push_back(s.id);
    }
  }

  struct Cache {
    struct Hash {
      using is_transparent = void;
      std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::vector<std::int32_t>, Hash, std::equal_to<>> words;
  };

  // This model's cache on the calling thread. Models are told apart by a process-unique
  // serial number, never by address, so a new model can never see an old model's entries.
  Cache& cache_for_thread() const {
    thread_local std::vector<std::pair<std::uint64_t, std::unique_ptr<Cache>>> caches;
    for (auto& [owner, cache] : caches) {
      if (owner == serial_) return *cache;
    }
    if (caches.size() >= 4) caches.erase(caches.begin());
    caches.emplace_back(serial_, std::make_unique<Cache>());
    return *caches.back().second;
  }

  static std::uint64_t next_serial() {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
  }

  std::vector<std::string> pieces_;                               // [vocab] raw bytes of each id
  PieceIndex ids_;                                                // piece -> id (over pieces_)
  PairTable<Merge> merges_;                                       // (left, right) -> rank, result
  std::array<std::int32_t, 256> byte_ids_{};                      // id of each byte (or its <0xHH>), -1 if none
  Options options_;
  std::uint64_t serial_ = next_serial();
};

}  // namespace maskgen::detail

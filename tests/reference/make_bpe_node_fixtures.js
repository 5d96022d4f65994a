#!/usr/bin/env node
// Writes the tokenizer.json fixtures that come from Hugging Face tokenizers run locally through the
// npm package @anush008/tokenizers (the Rust library behind Node):
//   random_<name>.json                  ids of 1000 random texts per tokenizer, built from pieces that
//                                       stress the pre-tokenizer, NFC and added-token matching
//                                       (white space of every kind, U+0085, U+180E, long s and
//                                       Kelvin sign in contractions, Hangul jamo, combining marks,
//                                       special tokens and their fragments)
//   llama3_template_processing.json     Llama 3's tokenizer.json with the TemplateProcessing
//                                       post-processor of Meta's published file (BOS first)
// Run from the repository root, with the package installed in a git-ignored folder:
//   npm install --prefix .node @anush008/tokenizers
//   node tests/reference/make_bpe_node_fixtures.js SHARED_TOKENIZERS_DIR tests/data/bpe
const path = require('path');
const fs = require('fs');
const { Tokenizer } = require(path.resolve('.node/node_modules/@anush008/tokenizers'));

const [tokenizersDir, outDir] = process.argv.slice(2);
const REFERENCE = '@anush008/tokenizers ' +
  require(path.resolve('.node/node_modules/@anush008/tokenizers/package.json')).version +
  ' (Hugging Face tokenizers), encode(text, null, {addSpecialTokens})';

function generator(seed) {  // xorshift32: the same texts on every machine
  let s = seed >>> 0;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
}
const POOL = ["hello", "World", "THE", "don", "'s", "'LL", "'ſ", "'Re", "'d", "'", "\u212a", "ſ",
  "1", "12", "123", "1234", "3.14", "0x1F", " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", "\u00a0",
  "\u3000", "\u0085", "\u180e", "\u2028", "\u200b", "\ufeff", "患者", "头痛", "三天", "，", "。", "東京",
  "ひらがな", "カタカナ", "서울", "\u1100\u1161", "\u1100", "\u1161\u11a8", "e\u0301", "\u0301", "A\u030a",
  "\u212b", "\u2126", "ﬁ", "ǅ", "ß", "İ", "Σ", "مرحبا", "١٢٣", "नमस्ते", "क्ष", "\u093f", "😀", "👍🏽",
  "👨‍👩‍👧", "🏳️‍🌈", "🇯🇵", "\u200d", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>",
  "<tool_call>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|im_start", "|>", "<", "def", "(",
  ")", "{", "}", ";", "==", "->", "http://x.y/z?a=1", "#", "@", "$", "%", "...", "—", "“", "”", "!", "?", "-",
  "_", "__init__", "aaaaaaaaaaaaaaaaaaaaaa", "ababababababab", "0000000000", "          ", "\t\t  \n  "];

async function ids(tok, text, special) {
  return Array.from((await tok.encode(text, null, { addSpecialTokens: special })).getIds());
}

async function randomFixture(name, seed) {
  const tok = Tokenizer.fromFile(path.join(tokenizersDir, name, 'tokenizer.json'));
  const rnd = generator(seed);
  const out = { reference: REFERENCE, seed, texts: [], ids: [] };
  for (let i = 0; i < 1000; ++i) {
    let t = '';
    for (let k = 1 + Math.floor(rnd() * 25); k > 0; --k) t += POOL[Math.floor(rnd() * POOL.length)];
    out.texts.push(t);
    out.ids.push(await ids(tok, t, false));
  }
  fs.writeFileSync(path.join(outDir, `random_${name}.json`), JSON.stringify(out) + '\n');
}

async function templateFixture() {
  const j = JSON.parse(fs.readFileSync(path.join(tokenizersDir, 'llama3', 'tokenizer.json')));
  const bos = { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } };
  j.post_processor = { type: 'Sequence', processors: [
    { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    { type: 'TemplateProcessing', single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } },
             { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] } } }] };
  const file = path.join(require('os').tmpdir(), 'maskgen-llama3-template.json');
  fs.writeFileSync(file, JSON.stringify(j));
  const tok = Tokenizer.fromFile(file);
  const out = { reference: REFERENCE, post_processor: j.post_processor, texts: [], ids_with_special: [], ids: [] };
  for (const t of ['', 'Hello world', '<|begin_of_text|>already there', '患者主诉头痛三天', ' leading space']) {
    out.texts.push(t);
    out.ids_with_special.push(await ids(tok, t, true));
    out.ids.push(await ids(tok, t, false));
  }
  fs.unlinkSync(file);
  fs.writeFileSync(path.join(outDir, 'llama3_template_processing.json'), JSON.stringify(out, null, 1) + '\n');
}

(async () => {
  await randomFixture('qwen3', 7);
  await randomFixture('llama3', 9);
  await templateFixture();
  console.log('written to', outDir);
})();

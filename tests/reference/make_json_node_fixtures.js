#!/usr/bin/env node
// Writes tests/data/bpe/json_<name>.json: ids and decoded texts from Hugging Face tokenizers, run
// locally through the npm package @anush008/tokenizers (the Rust library behind Node), for the
// real tokenizer.json files of Llama 2 and Gemma 3 (SentencePiece-style BPE: byte fallback,
// Prepend/Replace normalizers, Metaspace) and of gpt-oss and DeepSeek V3 (byte-level BPE), and for
// variants of Llama 2's file that exercise what the real files do not (Metaspace, Split behaviors,
// added tokens with every flag). A variant records its edit of Llama 2's file; the tests apply it.
//
// Each fixture holds: texts (hand-written ones, the texts of tests/data/tokenizer_fixtures.json,
// then random ones built from pieces that stress normalization, byte fallback and added tokens);
// for each text its ids with and without special tokens, and the decode of the ids with special
// tokens, with and without skip_special_tokens; then id sequences decoded the same way (random
// ids, and runs of <0xHH> byte pieces valid and not).
//
// Run from the repository root, with the package in a git-ignored folder and the tarballs of
// ../shared/tokenizers extracted somewhere:
//   npm install --prefix .node @anush008/tokenizers
//   node tests/reference/make_json_node_fixtures.js tests/data/bpe llama2=../shared/tokenizers/llama2-json \
//     llama2_model=../shared/tokenizers/llama2 gemma3=DIR gptoss=DIR deepseek_v3=DIR
// (../shared/tokenizers/llama2-json's vocabulary is Mistral 7B's, not that of llama2/tokenizer.model:
// json_llama2_converted.json comes from llama2/tokenizer.model converted as transformers does.)
const path = require('path');
const fs = require('fs');
const os = require('os');
const { Tokenizer } = require(path.resolve('.node/node_modules/@anush008/tokenizers'));

const [outDir, ...pairs] = process.argv.slice(2);
const dirs = Object.fromEntries(pairs.map(p => p.split('=')));
const REFERENCE = '@anush008/tokenizers ' +
  require(path.resolve('.node/node_modules/@anush008/tokenizers/package.json')).version +
  ' (Hugging Face tokenizers 0.22), encode(text, null, {addSpecialTokens}), decode(ids, skipSpecialTokens)';

function generator(seed) {  // xorshift32: the same texts on every machine
  let s = seed >>> 0;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
}

const HAND = ['', ' ', '  ', '   ', '\t', '\n', '\n\n\n', '\r\n', ' leading space', 'trailing space ',
  '  two leading', 'a  b   c    d', 'tabs\tand\t\tmore\ttabs', 'line\nbreaks\n\nand\r\nwindows',
  'Hello world', 'hello World HELLO', '患者主诉头痛三天，伴有发热和咳嗽。血压 130/85 mmHg。',
  '糖尿病患者应定期监测血糖水平', '𠀀𪚥 are rare CJK extension B characters', '患者𠀀主诉𪚥', '𠀀', '\u{2A6A5}\u{2000B}',
  'Emoji 😀👍🏽👨‍👩‍👧 🏳️‍🌈 🇯🇵', 'private use \u{E000}\u{F8FF} \u{10FFFD}', 'controls \u0000\u0001\u001f\u007f',
  'Numbers 3.14159 2,718 -42 1e10 0x1F 12345678901234567890', '0000000000 1111 2222222',
  'def f(x):\n\treturn x ** 2  # square\n', 'for (int i = 0; i < n; ++i) { a[i] = b[i] * 2; }',
  '<s>Hello</s>', 'Hello <s> world </s> end', '<s><s></s>', '<unk>', 'ab<unk>cd',
  '<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n', '<eos><pad><mask>',
  '<|endoftext|><|startoftext|>', '<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>',
  '<0x41> written out', '▁already▁metaspace▁', ' ▁ mixed ▁▁ ', 'Café déjà vu naïve façade Ångström',
  'e\u0301 A\u030a \u212b ﬁ ß İ Σ', 'مرحبا بالعالم ١٢٣', 'नमस्ते दुनिया', '東京の病院で診察 서울대학교병원',
  'Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ１２３ no\u00a0break\u3000ideographic', '\u2028\u2029\u0085\u180e\u200b\ufeff',
  'foo bar baz foobar [x] [x]y <tool> a<tool>b', ' foo', 'bar baz', 'x bar bazz bar baz.', '12 34 5a6',
  'The quick brown fox jumps over the lazy dog. '.repeat(6), 'a'.repeat(300), '😀'.repeat(50)];

const POOL = ['hello', 'World', 'THE', "don't", ' ', '  ', '   ', '\t', '\n', '\r\n', '\n\n', '\u00a0', '\u3000',
  '患者', '头痛', '，', '。', '東京', 'ひらがな', '서울', '𠀀', '𪚥', '\u{2000B}', '\u{E000}', '\u0000', '\u0007',
  'e\u0301', 'ﬁ', 'ß', 'مرحبا', 'नमस्ते', '😀', '👍🏽', '👨‍👩‍👧', '\u200d', '▁', '▁▁', '<0x41>', '<0xZZ>',
  '<s>', '</s>', '<unk>', '<bos>', '<eos>', '<pad>', '<start_of_turn>', '<end_of_turn>', '<unused0>',
  '<|endoftext|>', '<｜end▁of▁sentence｜>', '<tool>', 'foo', 'bar baz', '[x]', '<', '>', 'def', '(', ')',
  '{', '}', ';', '==', '->', 'http://x.y/z?a=1', '#', '$', '%', '...', '—', '“', '”', '!', '?', '-', '_',
  '__init__', '1', '12', '123', '1234', '3.14', '0000000000', 'aaaaaaaaaaaa', '          ', '\t\t  \n  '];

function fixtureTexts() {
  const shared = JSON.parse(fs.readFileSync(path.join('tests', 'data', 'tokenizer_fixtures.json'))).texts;
  return [...HAND, ...shared];
}

function randomTexts(seed, n) {
  const rnd = generator(seed);
  const out = [];
  for (let i = 0; i < n; ++i) {
    let t = '';
    for (let k = 1 + Math.floor(rnd() * 20); k > 0; --k) t += POOL[Math.floor(rnd() * POOL.length)];
    out.push(t);
  }
  return out;
}

async function encodeIds(tok, text, special) {
  return Array.from((await tok.encode(text, null, { addSpecialTokens: special })).getIds());
}

function decodeSequences(tok, seed) {
  const rnd = generator(seed);
  const n = tok.getVocabSize(true);
  const seqs = [];
  for (let i = 0; i < 30; ++i) {
    const s = [];
    for (let k = 1 + Math.floor(rnd() * 20); k > 0; --k) s.push(Math.floor(rnd() * n));
    seqs.push(s);
  }
  const id = t => tok.tokenToId(t);
  if (id('<0xE4>') !== null && id('<0xE4>') !== undefined) {
    const b = h => id(`<0x${h}>`);
    const word = id('▁the') ?? id('the');
    const space = id('▁');
    seqs.push([b('E4'), b('B8'), b('AD')], [b('E4'), b('B8')], [b('E4'), b('B8'), word], [b('FF')], [b('41'), b('42')],
      [b('E4'), word, b('B8'), b('AD')], [b('F0'), b('A0'), b('80'), b('80'), b('FF'), b('41')], [b('80')],
      [space, word], [space, space, word, space], [word, space], [b('20'), word], [b('E2'), b('96'), b('81'), word]);
    if (id('<s>') !== null) seqs.push([id('<s>'), space, word, id('</s>')], [id('<s>'), b('E4'), b('B8'), b('AD')]);
    if (id('<bos>') !== null) seqs.push([id('<bos>'), word, id('<eos>')], [id('<bos>'), space, word]);
  }
  return seqs;
}

async function fixture(name, file, seed, randomCount, edit) {
  const tok = Tokenizer.fromFile(file);
  const texts = [...fixtureTexts(), ...randomTexts(seed, randomCount)];
  const out = { reference: REFERENCE, vocab_size_with_added: tok.getVocabSize(true), texts, ids: [],
                ids_with_special: [], decoded_skip: [], decoded_keep: [], decode: [] };
  if (edit) out.edit = edit;
  for (const t of texts) {
    const withSpecial = await encodeIds(tok, t, true);
    out.ids.push(await encodeIds(tok, t, false));
    out.ids_with_special.push(withSpecial);
    out.decoded_skip.push(await tok.decode(withSpecial, true));
    out.decoded_keep.push(await tok.decode(withSpecial, false));
  }
  for (const ids of decodeSequences(tok, seed + 1)) {
    out.decode.push({ ids, skip: await tok.decode(ids, true), keep: await tok.decode(ids, false) });
  }
  fs.writeFileSync(path.join(outDir, `json_${name}.json`), JSON.stringify(out) + '\n');
  console.log('wrote', name, texts.length, 'texts');
}

async function variant(name, seed, edit) {
  const j = JSON.parse(fs.readFileSync(path.join(dirs.llama2, 'tokenizer.json')));
  Object.assign(j, edit);
  const file = path.join(os.tmpdir(), `maskgen-${name}.json`);
  fs.writeFileSync(file, JSON.stringify(j));
  await fixture(name, file, seed, 200, edit);
  fs.unlinkSync(file);
}

// A SentencePiece tokenizer.model (protobuf ModelProto) converted to tokenizer.json as
// transformers' LlamaConverter does (legacy: Prepend + Replace, no pre-tokenizer; merges from
// the vocabulary as SentencePieceExtractor makes them, ordered by the merged piece's score, then
// the lengths of its two parts, longest first; ties keep their order). The test
// tokenizer_json_reference_test.cpp converts the same file the same way through libsentencepiece.
function readModelProto(file) {
  const buf = fs.readFileSync(file);
  let pos = 0;
  const varint = () => { let v = 0, shift = 0, b; do { b = buf[pos++]; v += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80); return v; };
  const pieces = [];
  while (pos < buf.length) {
    const tag = varint(), field = Math.floor(tag / 8), wire = tag & 7;
    if (wire === 0) { varint(); continue; }
    if (wire === 5) { pos += 4; continue; }
    if (wire === 1) { pos += 8; continue; }
    const len = varint(), end = pos + len;
    if (field === 1) {  // SentencePiece { string piece = 1; float score = 2; Type type = 3; }
      const p = { piece: '', score: 0, type: 1 };
      while (pos < end) {
        const t = varint(), f = Math.floor(t / 8), w = t & 7;
        if (f === 1 && w === 2) { const l = varint(); p.piece = buf.toString('utf8', pos, pos + l); pos += l; }
        else if (f === 2 && w === 5) { p.score = buf.readFloatLE(pos); pos += 4; }
        else if (f === 3 && w === 0) { p.type = varint(); }
        else if (w === 0) varint(); else if (w === 5) pos += 4; else if (w === 1) pos += 8; else { const l = varint(); pos += l; }
      }
      pieces.push(p);
    }
    pos = end;
  }
  return pieces;
}

function convertLlamaModel(file) {
  const pieces = readModelProto(file);
  const scores = pieces.map((p, i) => (i < 3 ? 0 : p.score));
  const vocab = {};
  pieces.forEach((p, i) => { vocab[p.piece] = i; });
  const merges = [];
  pieces.forEach((p, i) => {
    const chars = [...p.piece];
    const local = [];
    for (let k = 1; k < chars.length; ++k) {
      const l = chars.slice(0, k).join(''), r = chars.slice(k).join('');
      if (l in vocab && r in vocab) local.push([l, r, scores[i], k, chars.length - k]);
    }
    local.sort((a, b) => vocab[a[0]] - vocab[b[0]] || vocab[a[1]] - vocab[b[1]]);
    merges.push(...local);
  });
  merges.sort((a, b) => b[2] - a[2] || b[3] - a[3] || b[4] - a[4]);
  const added = pieces.map((p, i) => [p, i]).filter(([p, i]) => i < 3 || p.type === 3 || p.type === 4)
    .map(([p, i]) => ({ id: i, content: p.piece, single_word: false, lstrip: false, rstrip: false, normalized: false,
                        special: i < 3 || p.type === 3 }));
  return { version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' },
                                                  { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
                      pair: [], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' },
                                            { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: merges.map(m => [m[0], m[1]]) } };
}

// Llama 2's tokenizer.model converted: ids of tests/data/tokenizer_fixtures.json's texts, whose
// SentencePiece ids that file records, so that the two backends can be compared where they agree.
async function convertedFixture(modelFile) {
  const file = path.join(os.tmpdir(), 'maskgen-llama2-converted.json');
  fs.writeFileSync(file, JSON.stringify(convertLlamaModel(modelFile)));
  const tok = Tokenizer.fromFile(file);
  const texts = [...fixtureTexts(), ...randomTexts(43, 200)];
  const out = { reference: REFERENCE, converted_from: 'llama2/tokenizer.model (LlamaConverter, legacy)', texts, ids: [],
                ids_with_special: [], decoded_keep: [] };
  for (const t of texts) {
    out.ids.push(await encodeIds(tok, t, false));
    const withSpecial = await encodeIds(tok, t, true);
    out.ids_with_special.push(withSpecial);
    out.decoded_keep.push(await tok.decode(withSpecial, false));
  }
  fs.unlinkSync(file);
  fs.writeFileSync(path.join(outDir, 'json_llama2_converted.json'), JSON.stringify(out) + '\n');
  console.log('wrote llama2_converted', texts.length, 'texts');
}

const META = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false };
const LLAMA2_DECODER = { type: 'Sequence', decoders: [
  { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
  { type: 'Strip', content: ' ', start: 1, stop: 0 }] };

(async () => {
  if (dirs.llama2) await fixture('llama2', path.join(dirs.llama2, 'tokenizer.json'), 11, 400);
  if (dirs.gemma3) await fixture('gemma3', path.join(dirs.gemma3, 'tokenizer.json'), 13, 400);
  if (dirs.gptoss) await fixture('gptoss', path.join(dirs.gptoss, 'tokenizer.json'), 17, 400);
  if (dirs.deepseek_v3) await fixture('deepseek_v3', path.join(dirs.deepseek_v3, 'tokenizer.json'), 19, 400);
  if (dirs.llama2_model) await convertedFixture(path.join(dirs.llama2_model, 'tokenizer.model'));
  if (!dirs.llama2) return;
  // Mistral and "legacy: false" Llama files: Metaspace instead of Prepend + Replace.
  await variant('llama2_metaspace_first', 23, { normalizer: null, pre_tokenizer: META, decoder: META });
  await variant('llama2_metaspace_always_split', 29, {
    normalizer: null, pre_tokenizer: { ...META, prepend_scheme: 'always', split: true },
    decoder: { type: 'Sequence', decoders: [{ ...META, prepend_scheme: 'always' }, { type: 'ByteFallback' }, { type: 'Fuse' }] } });
  await variant('llama2_metaspace_never', 31, {
    normalizer: null, pre_tokenizer: { ...META, prepend_scheme: 'never', split: true },
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { ...META, prepend_scheme: 'never' }, { type: 'Fuse' },
                                            { type: 'Strip', content: ' ', start: 2, stop: 0 }] } });
  // Split with the behaviors Gemma 3 names (on a text that still has its spaces) and MergedWithNext.
  await variant('llama2_split', 37, {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { String: '\t' }, content: '    ' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
      { type: 'Split', pattern: { Regex: '\\d' }, behavior: 'MergedWithNext', invert: false },
      { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: false }] },
    decoder: LLAMA2_DECODER });
  // Added tokens with every flag, on Llama 2's Prepend + Replace normalizer (a normalized token is
  // matched as its content normalized: "foo" as "▁foo").
  const base = JSON.parse(fs.readFileSync(path.join(dirs.llama2, 'tokenizer.json'))).added_tokens;
  const token = (id, content, special, o) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
                                                normalized: !special, special, ...o });
  await variant('llama2_added', 41, { added_tokens: [...base,
    token(32000, '<tool>', true, { lstrip: true, rstrip: true }),
    token(8014, 'foo', false, { normalized: true }),  // in the vocabulary: its id there
    token(32001, 'bar baz', false, { normalized: true, single_word: true }),
    token(32002, '[x]', false, { normalized: false, rstrip: true }),
    token(32003, ' ▁', false, { normalized: false, lstrip: true })] });
  console.log('written to', outDir);
})();

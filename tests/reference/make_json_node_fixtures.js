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
//   node tests/reference/make_json_node_fixtures.js tests/data/bpe \
//     llama2=../shared/tokenizers/llama2-json gemma3=DIR gptoss=DIR deepseek_v3=DIR
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

const META = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false };
const LLAMA2_DECODER = { type: 'Sequence', decoders: [
  { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
  { type: 'Strip', content: ' ', start: 1, stop: 0 }] };

(async () => {
  if (dirs.llama2) await fixture('llama2', path.join(dirs.llama2, 'tokenizer.json'), 11, 400);
  if (dirs.gemma3) await fixture('gemma3', path.join(dirs.gemma3, 'tokenizer.json'), 13, 400);
  if (dirs.gptoss) await fixture('gptoss', path.join(dirs.gptoss, 'tokenizer.json'), 17, 400);
  if (dirs.deepseek_v3) await fixture('deepseek_v3', path.join(dirs.deepseek_v3, 'tokenizer.json'), 19, 400);
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

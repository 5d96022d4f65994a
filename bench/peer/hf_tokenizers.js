#!/usr/bin/env node
// The peer of tokenizer_json_bench: Hugging Face tokenizers (Rust, through the npm package
// @anush008/tokenizers) on the same tokenizer.json and the same texts (bench/data/mixed_zh_en.txt).
// Prints one line per case: name, median over repetitions, texts/s. encodeBatch runs on the Rust
// library's own thread pool (every core, as maskgen's encode_batch with num_threads 0).
//   npm install --prefix .node @anush008/tokenizers
//   node bench/peer/hf_tokenizers.js TOKENIZER_JSON [REPETITIONS]
const path = require('path');
const fs = require('fs');
const { Tokenizer } = require(path.resolve('.node/node_modules/@anush008/tokenizers'));

const [file, reps = '9'] = process.argv.slice(2);
const texts = fs.readFileSync(path.join(__dirname, '..', 'data', 'mixed_zh_en.txt'), 'utf8').split('\n').filter(Boolean);
const now = () => Number(process.hrtime.bigint()) / 1e3;  // microseconds
const median = a => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };

async function time(fn, minMicros) {  // one repetition: loop until minMicros have passed
  let n = 0;
  const start = now();
  do { await fn(); ++n; } while (now() - start < minMicros);
  return (now() - start) / n;
}

(async () => {
  const loads = [];
  let tok;
  for (let r = 0; r < +reps; ++r) {
    const start = now();
    tok = Tokenizer.fromFile(file);
    loads.push(now() - start);
  }
  console.log(`hf_load\t${median(loads).toFixed(0)} us`);
  const one = texts[0];
  const cases = [
    ['hf_encode/1', 1, () => tok.encode(one, null, { addSpecialTokens: false })],
    ['hf_encodeBatch/1', 1, () => tok.encodeBatch([one], { addSpecialTokens: false })],
    ['hf_encodeBatch/64', 64, () => tok.encodeBatch(texts.slice(0, 64), { addSpecialTokens: false })],
    ['hf_encodeBatch/1024', 1024, () => tok.encodeBatch(texts.slice(0, 1024), { addSpecialTokens: false })],
  ];
  for (const [name, n, fn] of cases) {
    for (let w = 0; w < 3; ++w) await fn();  // warm up (thread pool, caches)
    const times = [];
    for (let r = 0; r < +reps; ++r) times.push(await time(fn, 200000));
    const m = median(times);
    console.log(`${name}\t${m.toFixed(1)} us\t${(n / m * 1e6).toFixed(0)} texts/s`);
  }
})();

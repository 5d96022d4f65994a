#!/usr/bin/env python3
"""Writes bench/data/mixed_zh_en.txt: 1024 lines of about 200 characters, Chinese medical sentences
mixed with English ones, digits and punctuation, from a fixed seed. The tokenizer.json benchmark
and its Hugging Face tokenizers peer both read this file.
  python3 bench/make_mixed_texts.py > bench/data/mixed_zh_en.txt"""
import random

ZH = ["患者主诉头痛三天", "伴有发热和咳嗽", "血压偏高", "建议复查血常规", "糖尿病患者应定期监测血糖水平",
      "并遵医嘱服用二甲双胍", "每日两次", "饭后服用", "如有不适请及时就医", "心电图未见明显异常",
      "肝功能指标正常", "高血压是心脑血管疾病的主要危险因素之一", "注意低盐低脂饮食", "适量运动", "体温"]
EN = ["The patient reported a mild headache", "after taking 500 mg of metformin", "blood pressure was",
      "Follow-up in two weeks", "no signs of infection", "the results were within normal limits",
      "Lily and Tom went to the park", "she said it's fine", "We'll check again tomorrow",
      "heart rate", "COVID-19 test negative", "see https://example.org/guide"]
PUNCT_ZH = ["，", "。", "；", "：", "（", "）"]

rng = random.Random(20261123)
for _ in range(1024):
    parts = []
    while sum(len(p) for p in parts) < 200:
        r = rng.random()
        if r < 0.45:
            parts.append(rng.choice(ZH) + rng.choice(PUNCT_ZH))
        elif r < 0.85:
            parts.append((" " if parts else "") + rng.choice(EN) + rng.choice([",", ".", ";", ""]) + " ")
        else:
            parts.append(f"{rng.randint(0, 300)}.{rng.randint(0, 9)} mmHg ")
    print("".join(parts).strip())

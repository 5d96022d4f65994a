#pragma once
// maskgen: padded batch tokenization and masked generation for decoder-only transformers.

#define MASKGEN_VERSION_MAJOR 0
#define MASKGEN_VERSION_MINOR 1
#define MASKGEN_VERSION_PATCH 0

#include "batch.hpp"
#include "chat_template.hpp"
#include "config.hpp"
#include "engine.hpp"
#include "error.hpp"
#include "generate.hpp"
#include "kv/cache.hpp"
#include "log.hpp"
#include "model.hpp"
#include "padding.hpp"
#include "pitfalls.hpp"
#include "safetensors.hpp"
#include "sampling.hpp"
#include "tokenizer.hpp"

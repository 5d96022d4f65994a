#pragma once
// maskgen: padded batch tokenization and masked generation for decoder-only transformers.

#define MASKGEN_VERSION_MAJOR 0
#define MASKGEN_VERSION_MINOR 1
#define MASKGEN_VERSION_PATCH 0

#include "batch.hpp"
#include "chat/reasoning.hpp"
#include "chat/tool_calls.hpp"
#include "chat_template.hpp"
#include "config.hpp"
#include "engine/engine.hpp"
#include "error.hpp"
#include "generation/generate.hpp"
#include "generation/logprobs.hpp"
#include "generation/pitfalls.hpp"
#include "generation/sampling.hpp"
#include "kv/block_manager.hpp"
#include "kv/cache.hpp"
#include "log.hpp"
#include "models/model.hpp"
#include "padding.hpp"
#include "safetensors.hpp"
#include "tokenizer.hpp"
#include "weights/codec.hpp"

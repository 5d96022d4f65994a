#pragma once
// maskgen: padded batch tokenization and masked generation for decoder-only transformers.

#define MASKGEN_VERSION_MAJOR 0
#define MASKGEN_VERSION_MINOR 1
#define MASKGEN_VERSION_PATCH 0

#include "error.hpp"
#include "log.hpp"
#include "padding.hpp"
#include "tokenizer.hpp"

#pragma once
// The key-value cache moved to kv/cache.hpp; this header keeps the old path working.
#include "kv/cache.hpp"

#pragma once
// Attention moved to ops/attention.hpp (its namespace is maskgen::ops); this header keeps the old
// include path working.
#include "ops/attention.hpp"

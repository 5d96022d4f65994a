#pragma once
// Sampling moved to generation/sampling.hpp; this header keeps the old path working.
#include "generation/sampling.hpp"

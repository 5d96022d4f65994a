#pragma once
// generate() moved to generation/generate.hpp; this header keeps the old path working.
#include "generation/generate.hpp"

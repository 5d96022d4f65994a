#pragma once
// The pitfalls moved to generation/pitfalls.hpp; this header keeps the old path working.
#include "generation/pitfalls.hpp"

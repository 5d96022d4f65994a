#pragma once
// The engine moved to engine/engine.hpp; this header keeps the old path working.
#include "engine/engine.hpp"

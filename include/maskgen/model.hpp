#pragma once
// The model moved to models/model.hpp; this header keeps the old path working.
#include "models/model.hpp"

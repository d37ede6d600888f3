// dydca: every kernel family header, for generated model sources.
#pragma once
#include "dydca/runtime.h"
#include "dydca/layout.h"
#include "dydca/reduce.h"
#include "dydca/linalg.h"
#include "dydca/selection.h"
#include "dydca/winograd.h"
#include "dydca/vmath.h"

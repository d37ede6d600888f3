// dydca: data-movement and reduction kernels shared by generated model sources.
#pragma once
#include "dydca/runtime.h"

/* dagrad: reverse-mode automatic differentiation on computation graphs, in C11.
 * Umbrella header: include this one. */
#ifndef DAGRAD_H
#define DAGRAD_H

#include "dagrad/core.h"
#include "dagrad/ops.h"
#include "dagrad/opkit.h"
#include "dagrad/layers.h"
#include "dagrad/optim.h"
#include "dagrad/io.h"
#include "dagrad/dot.h"
#include "dagrad/onnx.h"
#include "dagrad/precision.h"

#endif

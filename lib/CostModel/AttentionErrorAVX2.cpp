//===- AttentionErrorAVX2.cpp - The error evaluator for AVX2+FMA ----------===//
//
// Compiled with -mavx2 -mfma (x86-64 only); AttentionError.cpp calls it only
// when the CPU has both.
//
//===----------------------------------------------------------------------===//

#define KVC_ERROR_KERNEL_NAMESPACE avx2
#include "ErrorKernels.h"

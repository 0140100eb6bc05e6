//===- Numerics.h - Umbrella header of the kvc numerics library -*- C++ -*-===//
//
// The one definition of kvc's cache encodings: fp16/fp8 conversions, the group
// quantizer and its packed matrix form, the page layout, the meaning of a
// compressed cache, and the fp64 reference attention. Plain C++17.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_NUMERICS_H
#define KVC_NUMERICS_NUMERICS_H

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/Evict.h"
#include "kvc/Numerics/FP8.h"
#include "kvc/Numerics/FoldedScales.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"
#include "kvc/Numerics/Pack.h"
#include "kvc/Numerics/Prune.h"
#include "kvc/Numerics/Quantize.h"
#include "kvc/Numerics/ReferenceAttention.h"

#endif // KVC_NUMERICS_NUMERICS_H

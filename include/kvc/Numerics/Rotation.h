//===- Rotation.h - Hadamard rotation of keys -------------------*- C++ -*-===//
//
// Keys stored rotated by the orthonormal Sylvester-Hadamard matrix H of order
// D (QuaRot): H is symmetric and H·H = I, so q·k = (qH)·(kH), and the
// quantizer sees keys whose outlier channels are spread over all channels.
// h(i, j) = (-1)^popcount(i & j) / sqrt(D). kvc-rotate-keys rewrites IR to
// append kH and attend with qH; this is the definition the passes, the cost
// model and the Python harness share.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_ROTATION_H
#define KVC_NUMERICS_ROTATION_H

#include <cstddef>

namespace kvc {
namespace numerics {

/// Orders with a Sylvester-Hadamard matrix: powers of two.
bool isHadamardOrder(size_t d);

/// h(i, j) of the orthonormal Hadamard matrix of order d.
float hadamardEntry(size_t i, size_t j, size_t d);

/// x [rows][d] := x · H in place (a fast Walsh-Hadamard transform, scaled by
/// 1/sqrt(d)). Applying it twice gives x back (to rounding).
void hadamardRotate(float *x, size_t rows, size_t d);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_ROTATION_H

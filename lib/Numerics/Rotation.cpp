//===- Rotation.cpp - Hadamard rotation of keys ---------------------------===//

#include "kvc/Numerics/Rotation.h"

#include <cassert>
#include <cmath>

namespace kvc {
namespace numerics {

bool isHadamardOrder(size_t d) { return d > 0 && (d & (d - 1)) == 0; }

float hadamardEntry(size_t i, size_t j, size_t d) {
  unsigned bits = __builtin_popcountll(static_cast<unsigned long long>(i & j));
  float magnitude = 1.0f / std::sqrt(static_cast<float>(d));
  return (bits & 1u) ? -magnitude : magnitude;
}

void hadamardRotate(float *x, size_t rows, size_t d) {
  assert(isHadamardOrder(d) && "Hadamard rotation needs a power-of-two order");
  float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (size_t r = 0; r < rows; ++r) {
    float *row = x + r * d;
    // Butterflies of the Sylvester construction: H_2n = [[H, H], [H, -H]].
    for (size_t half = 1; half < d; half *= 2)
      for (size_t block = 0; block < d; block += 2 * half)
        for (size_t i = block; i < block + half; ++i) {
          float a = row[i], b = row[i + half];
          row[i] = a + b;
          row[i + half] = a - b;
        }
    for (size_t i = 0; i < d; ++i)
      row[i] *= scale;
  }
}

} // namespace numerics
} // namespace kvc

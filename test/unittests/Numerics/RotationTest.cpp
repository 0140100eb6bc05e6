//===- RotationTest.cpp - the Hadamard rotation of keys -------------------===//

#include "kvc/Numerics/Rotation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

using namespace kvc::numerics;

TEST(Rotation, Orders) {
  EXPECT_TRUE(isHadamardOrder(1));
  EXPECT_TRUE(isHadamardOrder(64));
  EXPECT_TRUE(isHadamardOrder(128));
  EXPECT_FALSE(isHadamardOrder(0));
  EXPECT_FALSE(isHadamardOrder(96));
}

// The fast transform equals the product with the matrix of the definition.
TEST(Rotation, MatchesTheMatrix) {
  for (size_t d : {2u, 8u, 64u, 128u}) {
    std::mt19937 rng{static_cast<unsigned>(d)};
    std::normal_distribution<float> normal;
    std::vector<float> x(3 * d), expected(3 * d, 0.0f);
    for (float &v : x)
      v = normal(rng);
    for (size_t r = 0; r < 3; ++r)
      for (size_t j = 0; j < d; ++j) {
        double sum = 0;
        for (size_t i = 0; i < d; ++i)
          sum += double(x[r * d + i]) * hadamardEntry(i, j, d);
        expected[r * d + j] = float(sum);
      }
    hadamardRotate(x.data(), 3, d);
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_NEAR(x[i], expected[i], 1e-5) << "d=" << d << " i=" << i;
  }
}

// H is orthonormal and symmetric: rotating twice is the identity, and dot
// products are kept.
TEST(Rotation, InvolutionAndDotProducts) {
  const size_t d = 128;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> q(d), k(d);
  for (size_t i = 0; i < d; ++i) {
    q[i] = normal(rng);
    k[i] = normal(rng) * (i % 16 == 0 ? 20.0f : 1.0f);
  }
  double dot = 0;
  for (size_t i = 0; i < d; ++i)
    dot += double(q[i]) * k[i];
  std::vector<float> qr = q, kr = k;
  hadamardRotate(qr.data(), 1, d);
  hadamardRotate(kr.data(), 1, d);
  double rotatedDot = 0;
  for (size_t i = 0; i < d; ++i)
    rotatedDot += double(qr[i]) * kr[i];
  EXPECT_NEAR(rotatedDot, dot, 1e-4 * std::fabs(dot) + 1e-4);
  hadamardRotate(kr.data(), 1, d);
  for (size_t i = 0; i < d; ++i)
    EXPECT_NEAR(kr[i], k[i], 1e-4f);
  // The outlier channels are spread: no rotated channel keeps a 20x peak.
  float peak = 0, mean = 0;
  hadamardRotate(kr.data(), 1, d);
  for (float v : kr) {
    peak = std::max(peak, std::fabs(v));
    mean += std::fabs(v) / d;
  }
  EXPECT_LT(peak / mean, 5.0f);
}

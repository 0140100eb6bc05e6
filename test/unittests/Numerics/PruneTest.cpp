//===- PruneTest.cpp - Key channel pruning (ThinK) ------------------------===//

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Prune.h"

#include "gtest/gtest.h"

#include <algorithm>

using namespace kvc::numerics;

TEST(Prune, SelectsChannelsByQueryTimesKeyNorm) {
  // D = 4: channel importance ||Q_c|| * ||K_c|| = 2*1, 1*5, 3*3, 0*100.
  const float q[] = {2, 1, 3, 0};
  const float k[] = {1, 5, 3, 100};
  EXPECT_EQ(selectKeyChannels(q, 1, k, 1, 4, 2), (std::vector<unsigned>{1, 2}));
  EXPECT_EQ(selectKeyChannels(q, 1, k, 1, 4, 3),
            (std::vector<unsigned>{0, 1, 2}));
  // Ties keep the lower channel; the result is sorted.
  const float ones[] = {1, 1, 1, 1};
  EXPECT_EQ(selectKeyChannels(ones, 1, ones, 1, 4, 2),
            (std::vector<unsigned>{0, 1}));
}

TEST(Prune, RoundTripEncodesKeptChannelsAndZeroesTheRest) {
  const size_t n = 32, d = 8;
  std::vector<float> x(n * d);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(int(i * 7 % 23) - 11) / 4.0f;
  const std::vector<unsigned> kept = {1, 4, 6};
  const SideEncoding q4 = SideEncoding::quantized(4, QuantAxis::Channel, 32);
  std::vector<float> out = pruneRoundTrip(x.data(), n, d, kept, q4);
  std::vector<float> gathered;
  for (size_t t = 0; t < n; ++t)
    for (unsigned c : kept)
      gathered.push_back(x[t * d + c]);
  std::vector<float> expected = compressRoundTrip(gathered.data(), n, 3, q4);
  for (size_t t = 0; t < n; ++t)
    for (size_t c = 0; c < d; ++c) {
      auto it = std::find(kept.begin(), kept.end(), c);
      const float want =
          it == kept.end() ? 0.0f : expected[t * 3 + (it - kept.begin())];
      EXPECT_EQ(out[t * d + c], want) << t << "," << c;
    }
}

TEST(Prune, Validation) {
  EXPECT_EQ(validatePrune(48, 64, SideEncoding::plain(), 128), "");
  EXPECT_EQ(validatePrune(0, 64, SideEncoding::plain(), 128),
            "pruning must keep between 1 and head_dim (64) channels (got 0)");
  EXPECT_EQ(validatePrune(48, 64,
                          SideEncoding::quantized(2, QuantAxis::Token, 32),
                          128),
            "after pruning to 48 channels: token-axis group (32) must divide "
            "head_dim (48)");
}

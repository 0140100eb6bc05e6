//===- CandidatesTest.cpp - Candidate enumeration, costs, parsing ---------===//

#include "kvc/CostModel/AttentionError.h"
#include "kvc/CostModel/Candidates.h"

#include "gtest/gtest.h"

using namespace kvc::cost;
using kvc::numerics::QuantAxis;
using kvc::numerics::SideEncoding;

TEST(Candidates, Costs) {
  EXPECT_EQ(Candidate{}.bitsPerElement(128), 16.0);
  EXPECT_EQ((Candidate{SideEncoding::quantized(2, QuantAxis::Channel, 32), 0})
                .bitsPerElement(128),
            3.0);
  EXPECT_EQ((Candidate{SideEncoding::quantized(4, QuantAxis::Token, 128), 0})
                .bitsPerElement(128),
            4.25);
  EXPECT_EQ((Candidate{SideEncoding::fp8Format(kvc::numerics::FP8Format::E4M3),
                       0})
                .bitsPerElement(64),
            8.25);
  // Keeping 48 of 64 channels at q4/g32: 3/4 * 5 bits.
  EXPECT_EQ((Candidate{SideEncoding::quantized(4, QuantAxis::Channel, 32), 48})
                .bitsPerElement(64),
            3.75);
}

TEST(Candidates, EnumerationRespectsHeadDimAndResidual) {
  // D = 64, R = 128, no page constraint: channel groups 32/64/128, token
  // groups 32/64.
  CandidateOptions anyPage;
  anyPage.pageTokens = 0;
  std::vector<Candidate> keys =
      enumerateCandidates(Side::Key, 64, 128, anyPage);
  EXPECT_EQ(keys.size(), 1u + 4u * (3u + 2u) + 2u);
  // 64-token pages (the default) hold no 128-token channel group.
  EXPECT_EQ(enumerateCandidates(Side::Key, 64, 128, {}).size(),
            1u + 4u * (2u + 2u) + 2u);
  EXPECT_EQ(keys.front(), Candidate{});
  // R = 64: no channel group of 128. R = 0: no channel axis at all.
  EXPECT_EQ(enumerateCandidates(Side::Key, 64, 64, {}).size(),
            1u + 4u * (2u + 2u) + 2u);
  EXPECT_EQ(enumerateCandidates(Side::Value, 64, 0, {}).size(),
            1u + 4u * 2u + 2u);
  // Pruning is for keys only.
  CandidateOptions prune = anyPage;
  prune.prune = true;
  EXPECT_EQ(enumerateCandidates(Side::Key, 64, 128, prune).size(),
            keys.size() + 2u * 5u);
  EXPECT_EQ(enumerateCandidates(Side::Value, 64, 128, prune).size(),
            keys.size());
  for (const Candidate &c : enumerateCandidates(Side::Key, 64, 128, prune))
    EXPECT_EQ(validateCandidate(c, Side::Key, 64, 128), "") << c.toString();
}

TEST(Candidates, ParseAndPrint) {
  for (const char *text : {"fp16", "q2:channel:g32", "q3:token:g64",
                           "fp8:e4m3", "fp8:e5m2", "prune48+q4:channel:g32"}) {
    llvm::Expected<Candidate> c = parseCandidate(text);
    ASSERT_TRUE(static_cast<bool>(c)) << llvm::toString(c.takeError());
    EXPECT_EQ(c->toString(), text);
  }
  for (const char *text : {"q5:channel:g32", "q2:chan:g32", "q2:token:g48",
                           "fp8:e3m4", "int4", "prune0+fp16", "prune8"}) {
    llvm::Expected<Candidate> c = parseCandidate(text);
    ASSERT_FALSE(static_cast<bool>(c)) << text;
    EXPECT_NE(llvm::toString(c.takeError()).find(text), std::string::npos);
  }
  EXPECT_EQ(validateCandidate(*parseCandidate("prune32+fp16"), Side::Value, 64,
                              128),
            "channel pruning applies to keys only");
}

// The analytic proxy orders encodings the way the measurements do.
TEST(Candidates, AnalyticProxyOrdering) {
  auto q = [](unsigned b, QuantAxis a, unsigned g) {
    return Candidate{SideEncoding::quantized(b, a, g), 0};
  };
  const QuantAxis ch = QuantAxis::Channel, tok = QuantAxis::Token;
  EXPECT_EQ(analyticError(Candidate{}, Side::Key), 0.0);
  for (auto [lo, hi] : {std::pair{2u, 3u}, {3u, 4u}, {4u, 8u}})
    EXPECT_GT(analyticError(q(lo, ch, 32), Side::Key),
              analyticError(q(hi, ch, 32), Side::Key));
  EXPECT_GT(analyticError(q(2, ch, 128), Side::Key),
            analyticError(q(2, ch, 32), Side::Key));
  EXPECT_GT(analyticError(q(2, tok, 32), Side::Key),
            analyticError(q(2, ch, 32), Side::Key));
  EXPECT_GT(analyticError(q(2, ch, 32), Side::Value),
            analyticError(q(2, tok, 32), Side::Value));
  // Keys weigh more: K4/V2 beats K2/V4 at equal bits.
  EXPECT_LT(analyticError(q(4, ch, 32), Side::Key) +
                analyticError(q(2, tok, 32), Side::Value),
            analyticError(q(2, ch, 32), Side::Key) +
                analyticError(q(4, tok, 32), Side::Value));
}

//===- SolverTest.cpp - Knapsack solvers vs brute force -------------------===//

#include "kvc/CostModel/Solver.h"

#include "gtest/gtest.h"

#include <cmath>
#include <limits>
#include <random>

using namespace kvc::cost;

namespace {
/// The optimum by enumeration of every combination (small instances).
bool bruteForce(const std::vector<Slot> &slots, double budget, double &best,
                std::vector<size_t> &bestChoice) {
  double weightSum = 0.0;
  for (const Slot &s : slots)
    weightSum += s.weight;
  std::vector<size_t> choice(slots.size(), 0);
  best = std::numeric_limits<double>::infinity();
  while (true) {
    double cost = 0.0, loss = 0.0;
    for (size_t i = 0; i < slots.size(); ++i) {
      cost += slots[i].weight * slots[i].options[choice[i]].cost;
      loss += slots[i].options[choice[i]].loss;
    }
    if (cost <= budget * weightSum + 1e-9 && loss < best) {
      best = loss;
      bestChoice = choice;
    }
    size_t i = 0;
    while (i < slots.size() && ++choice[i] == slots[i].options.size())
      choice[i++] = 0;
    if (i == slots.size())
      break;
  }
  return std::isfinite(best);
}

/// Random instance: costs on a 1/4-bit grid (like b + 32/G), integer
/// weights, losses decreasing-ish with cost plus noise.
std::vector<Slot> randomInstance(std::mt19937 &rng, size_t numSlots,
                                 size_t numOptions) {
  std::uniform_int_distribution<int> quarterBits(8, 64); // 2..16 bits
  std::uniform_int_distribution<int> weight(1, 4);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Slot> slots(numSlots);
  for (Slot &s : slots) {
    s.weight = weight(rng);
    for (size_t o = 0; o < numOptions; ++o) {
      const double cost = quarterBits(rng) / 4.0;
      s.options.push_back({cost, std::exp(-cost / 2.0) * (0.5 + unit(rng))});
    }
  }
  return slots;
}
} // namespace

TEST(Solver, DPMatchesBruteForce) {
  std::mt19937 rng(1234);
  int feasibleCount = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const size_t numSlots = 1 + trial % 5, numOptions = 1 + (trial / 5) % 4;
    std::vector<Slot> slots = randomInstance(rng, numSlots, numOptions);
    const double budget = 2.0 + (trial % 13);
    double best;
    std::vector<size_t> bestChoice;
    const bool feasible = bruteForce(slots, budget, best, bestChoice);
    llvm::Expected<Solution> dp = solveExact(slots, budget);
    if (!feasible) {
      EXPECT_FALSE(static_cast<bool>(dp)) << "trial " << trial;
      llvm::consumeError(dp.takeError());
      continue;
    }
    ++feasibleCount;
    ASSERT_TRUE(static_cast<bool>(dp))
        << "trial " << trial << ": " << llvm::toString(dp.takeError());
    EXPECT_NEAR(dp->totalLoss, best, 1e-12) << "trial " << trial;
    EXPECT_LE(dp->averageCost, budget + 1e-12);
    EXPECT_TRUE(dp->exact);
    EXPECT_EQ(dp->method, "dp");
  }
  EXPECT_GT(feasibleCount, 150);
}

TEST(Solver, IntegerKnapsackMatchesBruteForce) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<long> cost(0, 9);
  std::uniform_real_distribution<double> loss(0.0, 1.0);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 1 + trial % 4, m = 1 + trial % 3;
    std::vector<std::vector<long>> costs(n);
    std::vector<std::vector<double>> losses(n);
    for (size_t i = 0; i < n; ++i)
      for (size_t o = 0; o < m; ++o) {
        costs[i].push_back(cost(rng));
        losses[i].push_back(loss(rng));
      }
    const long capacity = trial % 20;
    double best = std::numeric_limits<double>::infinity();
    std::vector<size_t> c(n, 0);
    while (true) {
      long total = 0;
      double l = 0;
      for (size_t i = 0; i < n; ++i) {
        total += costs[i][c[i]];
        l += losses[i][c[i]];
      }
      if (total <= capacity)
        best = std::min(best, l);
      size_t i = 0;
      while (i < n && ++c[i] == m)
        c[i++] = 0;
      if (i == n)
        break;
    }
    std::vector<size_t> choice;
    const bool ok = solveIntegerKnapsack(costs, losses, capacity, choice);
    ASSERT_EQ(ok, std::isfinite(best)) << "trial " << trial;
    if (!ok)
      continue;
    double l = 0;
    long total = 0;
    for (size_t i = 0; i < n; ++i) {
      l += losses[i][choice[i]];
      total += costs[i][choice[i]];
    }
    EXPECT_LE(total, capacity);
    EXPECT_NEAR(l, best, 1e-12) << "trial " << trial;
  }
}

// Lagrangian: always feasible; its dual bound is a lower bound of the
// optimum and its loss an upper bound (the stated guarantee).
TEST(Solver, LagrangianIsFeasibleAndBracketsTheOptimum) {
  std::mt19937 rng(7);
  double worstGap = 0.0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<Slot> slots = randomInstance(rng, 2 + trial % 4, 2 + trial % 3);
    const double budget = 3.0 + (trial % 11);
    double best;
    std::vector<size_t> bestChoice;
    if (!bruteForce(slots, budget, best, bestChoice))
      continue;
    llvm::Expected<Solution> lag = solveLagrangian(slots, budget);
    ASSERT_TRUE(static_cast<bool>(lag)) << llvm::toString(lag.takeError());
    EXPECT_LE(lag->averageCost, budget + 1e-9) << "trial " << trial;
    EXPECT_GE(lag->totalLoss, best - 1e-12) << "trial " << trial;
    EXPECT_LE(lag->lowerBound, best + 1e-9) << "trial " << trial;
    if (lag->exact) {
      EXPECT_NEAR(lag->totalLoss, best, 1e-9);
    }
    worstGap = std::max(worstGap, lag->totalLoss - best);
  }
  std::printf("largest Lagrangian gap to the optimum: %.4f\n", worstGap);
}

TEST(Solver, SolvePicksDPForSmallInstancesAndLagrangianForHuge) {
  std::mt19937 rng(3);
  std::vector<Slot> slots = randomInstance(rng, 6, 4);
  llvm::Expected<Solution> small = solve(slots, 8.0);
  ASSERT_TRUE(static_cast<bool>(small));
  EXPECT_EQ(small->method, "dp");
  SolveOptions tiny;
  tiny.maxTableCells = 10;
  llvm::Expected<Solution> big = solve(slots, 8.0, tiny);
  ASSERT_TRUE(static_cast<bool>(big));
  EXPECT_EQ(big->method, "lagrangian");
  EXPECT_GE(big->totalLoss, small->totalLoss - 1e-12);
}

TEST(Solver, InfeasibleBudgetNamesTheCheapestAverage) {
  std::vector<Slot> slots(2);
  slots[0].options = {{2.25, 1.0}, {16.0, 0.0}};
  slots[1].options = {{3.0, 1.0}, {16.0, 0.0}};
  llvm::Expected<Solution> s = solve(slots, 2.0);
  ASSERT_FALSE(static_cast<bool>(s));
  EXPECT_EQ(llvm::toString(s.takeError()),
            "budget 2 bits/element is infeasible: the cheapest candidates "
            "average 2.6250 bits/element");
  llvm::Expected<Solution> none = solve({}, 4.0);
  ASSERT_FALSE(static_cast<bool>(none));
  EXPECT_EQ(llvm::toString(none.takeError()), "nothing to allocate: no slots");
}

// Non-grid costs (fp8 at head_dim 80: 8.2 bits) are rounded up: the DP
// answer stays feasible.
TEST(Solver, OffGridCostsStayFeasible) {
  std::vector<Slot> slots(3);
  for (Slot &s : slots)
    s.options = {{8.2, 0.1}, {3.0, 1.0}, {16.0, 0.0}};
  llvm::Expected<Solution> s = solveExact(slots, 8.2);
  ASSERT_TRUE(static_cast<bool>(s));
  EXPECT_LE(s->averageCost, 8.2 + 1e-12);
}

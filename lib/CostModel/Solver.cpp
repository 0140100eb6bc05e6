//===- Solver.cpp - Multiple-choice knapsack over slots -------------------===//

#include "kvc/CostModel/Solver.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace kvc {
namespace cost {

namespace {
/// Shortest round-trip form of a user-given number ("3", "2.5").
std::string formatNumber(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

llvm::Error solverError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

double totalWeight(const std::vector<Slot> &slots) {
  double w = 0.0;
  for (const Slot &s : slots)
    w += s.weight;
  return w;
}

/// Checks the instance; the cheapest average cost must fit the budget.
llvm::Error checkInstance(const std::vector<Slot> &slots, double budget) {
  if (slots.empty())
    return solverError("nothing to allocate: no slots");
  double cheapest = 0.0;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].options.empty())
      return solverError("slot " + llvm::Twine(i) + " has no options");
    if (!(slots[i].weight > 0.0))
      return solverError("slot " + llvm::Twine(i) + " has no elements");
    // The DP records choices in 16 bits.
    if (slots[i].options.size() > 65535)
      return solverError("slot " + llvm::Twine(i) + " has more than 65535 "
                         "options");
    double minCost = std::numeric_limits<double>::infinity();
    for (const SlotOption &o : slots[i].options)
      minCost = std::min(minCost, o.cost);
    cheapest += slots[i].weight * minCost;
  }
  cheapest /= totalWeight(slots);
  // A relative tolerance: budgets are written with few digits.
  if (cheapest > budget * (1.0 + 1e-12))
    return solverError(llvm::formatv(
        "budget {0} bits/element is infeasible: the cheapest candidates "
        "average {1:F4} bits/element",
        formatNumber(budget), cheapest));
  return llvm::Error::success();
}

Solution finish(const std::vector<Slot> &slots, std::vector<size_t> choice,
                const char *method) {
  Solution s;
  s.choice = std::move(choice);
  s.method = method;
  double cost = 0.0;
  for (size_t i = 0; i < slots.size(); ++i) {
    const SlotOption &o = slots[i].options[s.choice[i]];
    s.totalLoss += o.loss;
    cost += slots[i].weight * o.cost;
  }
  s.averageCost = cost / totalWeight(slots);
  return s;
}
} // namespace

llvm::Expected<CombinedSlot>
combineGroup(const std::vector<GroupVariant> &variants) {
  if (variants.empty())
    return solverError("a slot group needs at least one variant");
  const std::vector<Slot> &first = variants.front().slots;
  if (first.empty())
    return solverError("a slot group needs at least one slot");
  for (const GroupVariant &v : variants) {
    if (v.slots.size() != first.size())
      return solverError("the variants of a slot group differ in slots");
    for (size_t i = 0; i < first.size(); ++i) {
      if (v.slots[i].weight != first[i].weight)
        return solverError("the variants of a slot group differ in weights");
      if (v.slots[i].options.empty())
        return solverError("slot " + llvm::Twine(i) + " of a group has no "
                           "options");
    }
  }
  struct Point {
    double cost, loss; // cost: sum of weight * cost
    GroupChoice choice;
  };
  // Keeps the Pareto frontier: by cost, then loss, then insertion order;
  // a point stays if it has less loss than every cheaper-or-equal one.
  auto frontier = [](std::vector<Point> points) {
    std::stable_sort(points.begin(), points.end(),
                     [](const Point &a, const Point &b) {
                       return a.cost != b.cost ? a.cost < b.cost
                                               : a.loss < b.loss;
                     });
    std::vector<Point> kept;
    for (Point &p : points)
      if (kept.empty() || p.loss < kept.back().loss)
        kept.push_back(std::move(p));
    return kept;
  };
  std::vector<Point> all;
  for (size_t v = 0; v < variants.size(); ++v) {
    std::vector<Point> points = {{0.0, variants[v].fixedLoss, {v, {}}}};
    for (const Slot &slot : variants[v].slots) {
      std::vector<Point> next;
      for (const Point &p : points)
        for (size_t o = 0; o < slot.options.size(); ++o) {
          Point q = p;
          q.cost += slot.weight * slot.options[o].cost;
          q.loss += slot.options[o].loss;
          q.choice.choice.push_back(o);
          next.push_back(std::move(q));
        }
      points = frontier(std::move(next));
    }
    all.insert(all.end(), points.begin(), points.end());
  }
  all = frontier(std::move(all));
  CombinedSlot combined;
  combined.slot.weight = 0.0;
  for (const Slot &s : first)
    combined.slot.weight += s.weight;
  for (Point &p : all) {
    combined.slot.options.push_back(
        {p.cost / combined.slot.weight, p.loss});
    combined.choices.push_back(std::move(p.choice));
  }
  return combined;
}

bool solveIntegerKnapsack(const std::vector<std::vector<long>> &costs,
                          const std::vector<std::vector<double>> &losses,
                          long capacity, std::vector<size_t> &choice) {
  const size_t n = costs.size();
  const double inf = std::numeric_limits<double>::infinity();
  if (capacity < 0)
    return false;
  const size_t width = size_t(capacity) + 1;
  // best[c]: least loss of the slots so far with total cost exactly c.
  std::vector<double> best(width, inf), next(width);
  best[0] = 0.0;
  std::vector<uint16_t> pick(n * width);
  for (size_t i = 0; i < n; ++i) {
    std::fill(next.begin(), next.end(), inf);
    for (size_t o = 0; o < costs[i].size(); ++o) {
      const long c = costs[i][o];
      if (c < 0 || c > capacity)
        continue;
      const double l = losses[i][o];
      for (size_t from = 0; from + size_t(c) < width; ++from) {
        if (best[from] == inf)
          continue;
        const double cand = best[from] + l;
        // Ties go to the earlier option for a deterministic answer.
        if (cand < next[from + c]) {
          next[from + c] = cand;
          pick[i * width + from + c] = uint16_t(o);
        }
      }
    }
    best.swap(next);
  }
  size_t at = 0;
  for (size_t c = 1; c < width; ++c)
    if (best[c] < best[at])
      at = c;
  if (best[at] == inf)
    return false;
  choice.assign(n, 0);
  for (size_t i = n; i-- > 0;) {
    const size_t o = pick[i * width + at];
    choice[i] = o;
    at -= size_t(costs[i][o]);
  }
  return true;
}

llvm::Expected<Solution> solveExact(const std::vector<Slot> &slots,
                                    double budget,
                                    const SolveOptions &options) {
  if (llvm::Error e = checkInstance(slots, budget))
    return std::move(e);
  // Weights relative to the lightest slot keep the capacity small.
  double minWeight = slots[0].weight;
  for (const Slot &s : slots)
    minWeight = std::min(minWeight, s.weight);
  std::vector<std::vector<long>> costs(slots.size());
  std::vector<std::vector<double>> losses(slots.size());
  // Rounding up (less a hair for float noise) keeps every answer feasible.
  auto units = [&](double x) {
    return long(std::ceil(x * options.resolution - 1e-9));
  };
  for (size_t i = 0; i < slots.size(); ++i)
    for (const SlotOption &o : slots[i].options) {
      costs[i].push_back(units(slots[i].weight / minWeight * o.cost));
      losses[i].push_back(o.loss);
    }
  const long capacity = long(std::floor(
      budget * totalWeight(slots) / minWeight * options.resolution + 1e-9));
  std::vector<size_t> choice;
  if (!solveIntegerKnapsack(costs, losses, capacity, choice))
    return solverError(llvm::formatv(
        "budget {0} bits/element is infeasible at the solver's resolution "
        "(1/{1} bit)",
        formatNumber(budget), options.resolution));
  Solution s = finish(slots, std::move(choice), "dp");
  s.exact = true;
  s.lowerBound = s.totalLoss;
  return s;
}

llvm::Expected<Solution> solveLagrangian(const std::vector<Slot> &slots,
                                         double budget) {
  if (llvm::Error e = checkInstance(slots, budget))
    return std::move(e);
  const double weightSum = totalWeight(slots);
  // For a multiplier lambda, each slot takes argmin loss + lambda*w*cost
  // (ties: the cheaper option). Larger lambda -> cheaper choices.
  auto pickAll = [&](double lambda, std::vector<size_t> &choice) {
    double cost = 0.0, dual = 0.0;
    choice.resize(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) {
      const Slot &s = slots[i];
      size_t best = 0;
      double bestValue = std::numeric_limits<double>::infinity();
      for (size_t o = 0; o < s.options.size(); ++o) {
        const double v = s.options[o].loss + lambda * s.weight * s.options[o].cost;
        if (v < bestValue ||
            (v == bestValue && s.options[o].cost < s.options[best].cost)) {
          bestValue = v;
          best = o;
        }
      }
      choice[i] = best;
      cost += s.weight * s.options[best].cost;
      dual += bestValue;
    }
    return std::pair{cost / weightSum, dual - lambda * budget * weightSum};
  };
  std::vector<size_t> choice;
  auto [cost0, dual0] = pickAll(0.0, choice);
  if (cost0 <= budget) {
    Solution s = finish(slots, choice, "lagrangian");
    s.exact = true;
    s.lowerBound = s.totalLoss;
    return s;
  }
  double lo = 0.0, hi = 1.0;
  std::vector<size_t> feasible;
  double bound = dual0;
  while (true) {
    auto [cost, dual] = pickAll(hi, feasible);
    bound = std::max(bound, dual);
    if (cost <= budget * (1.0 + 1e-12))
      break;
    lo = hi;
    hi *= 2.0;
    if (hi > 1e300)
      return solverError("lagrangian search did not reach the budget");
  }
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    std::vector<size_t> c;
    auto [cost, dual] = pickAll(mid, c);
    bound = std::max(bound, dual);
    if (cost <= budget * (1.0 + 1e-12)) {
      hi = mid;
      feasible = std::move(c);
    } else {
      lo = mid;
    }
  }
  Solution s = finish(slots, feasible, "lagrangian");
  s.lowerBound = std::min(bound, s.totalLoss);
  s.exact = s.lowerBound >= s.totalLoss;
  return s;
}

llvm::Expected<Solution> solve(const std::vector<Slot> &slots, double budget,
                               const SolveOptions &options) {
  if (llvm::Error e = checkInstance(slots, budget))
    return std::move(e);
  double minWeight = slots[0].weight;
  for (const Slot &s : slots)
    minWeight = std::min(minWeight, s.weight);
  const double capacity =
      budget * totalWeight(slots) / minWeight * options.resolution;
  if (capacity * double(slots.size()) <= double(options.maxTableCells))
    return solveExact(slots, budget, options);
  return solveLagrangian(slots, budget);
}

} // namespace cost
} // namespace kvc

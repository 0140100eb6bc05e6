//===- Solver.h - Multiple-choice knapsack over slots -----------*- C++ -*-===//
//
// Choose one option per slot minimising the total loss subject to
//   sum_i weight_i * cost_i(choice_i) <= budget * sum_i weight_i
// (an average cost per element: weight = elements of the slot, cost = bits
// per element). Two solvers:
//  - solveExact: dynamic programming over costs discretized to integers
//    (costs rounded up, so its answers are always feasible; exact when every
//    weight*cost is a multiple of the resolution, which holds for the usual
//    encodings: see docs/cost-model.md);
//  - solveLagrangian: minimise loss + lambda * cost per slot, bisection on
//    lambda; feasible, on the lower convex hull of each slot, with the dual
//    bound lowerBound <= optimum <= totalLoss.
// solve() uses the DP when its table is small enough, else Lagrangian.
// combineGroup turns slots that share a choice (a layer's token budget,
// which fixes the costs and losses of its K and V slots) into one slot whose
// options are the Pareto-optimal joint choices, so both solvers stay exact.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_COSTMODEL_SOLVER_H
#define KVC_COSTMODEL_SOLVER_H

#include "llvm/Support/Error.h"

#include <cstddef>
#include <string>
#include <vector>

namespace kvc {
namespace cost {

struct SlotOption {
  double cost = 0.0; ///< per element (bits)
  double loss = 0.0; ///< predicted loss if chosen
};

struct Slot {
  double weight = 1.0; ///< elements (any common unit)
  std::vector<SlotOption> options;
};

struct Solution {
  std::vector<size_t> choice; ///< option index per slot
  double totalLoss = 0.0;
  double averageCost = 0.0; ///< sum weight*cost / sum weight
  /// A lower bound on the optimal loss (== totalLoss when proven optimal).
  double lowerBound = 0.0;
  bool exact = false;       ///< proven optimal (for the discretized costs)
  std::string method;       ///< "dp" or "lagrangian"
};

struct SolveOptions {
  /// Cost units per unit of weight*cost in the DP (1/32 bit per element).
  double resolution = 32.0;
  /// Largest DP table (slots x capacity) before falling back to Lagrangian.
  size_t maxTableCells = size_t(1) << 24;
};

/// One way of choosing a group of slots jointly: the group's slots as they
/// are under this variant, and a loss the variant adds (e.g. a token
/// budget's eviction error).
struct GroupVariant {
  double fixedLoss = 0.0;
  std::vector<Slot> slots; ///< same count and weights in every variant
};

/// What an option of a combined slot stands for.
struct GroupChoice {
  size_t variant = 0;
  std::vector<size_t> choice; ///< option index per slot of the variant
};

/// A group as one slot: weight = the slots' total weight, options = the
/// joint choices (variant, one option per slot) with cost = their
/// weight-averaged cost and loss = fixedLoss + their losses, less every
/// choice another one dominates (no more cost and no more loss; ties keep
/// the earlier variant, then the earlier options). Dropping dominated
/// choices never changes an optimum, so solving the combined slots solves
/// the grouped problem exactly.
struct CombinedSlot {
  Slot slot;
  std::vector<GroupChoice> choices; ///< parallel to slot.options
};
/// Errors: no variants, variants whose slots differ in count or weight, a
/// slot without options.
llvm::Expected<CombinedSlot>
combineGroup(const std::vector<GroupVariant> &variants);

/// Exact DP on integer costs: minimise sum loss s.t. sum cost <= capacity.
/// Returns false if infeasible.
bool solveIntegerKnapsack(const std::vector<std::vector<long>> &costs,
                          const std::vector<std::vector<double>> &losses,
                          long capacity, std::vector<size_t> &choice);

/// The DP on `slots` (see the file comment).
llvm::Expected<Solution> solveExact(const std::vector<Slot> &slots,
                                    double budget,
                                    const SolveOptions &options = {});
/// The Lagrangian relaxation (see the file comment).
llvm::Expected<Solution> solveLagrangian(const std::vector<Slot> &slots,
                                         double budget);
/// DP if small enough, else Lagrangian. Errors: no slots, a slot without
/// options, infeasible budget (naming the cheapest possible average).
llvm::Expected<Solution> solve(const std::vector<Slot> &slots, double budget,
                               const SolveOptions &options = {});

} // namespace cost
} // namespace kvc

#endif // KVC_COSTMODEL_SOLVER_H

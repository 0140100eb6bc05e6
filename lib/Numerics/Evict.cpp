//===- Evict.cpp - token eviction semantics -------------------------------===//

#include "kvc/Numerics/Evict.h"

#include "Check.h"
#include "kvc/Numerics/Cache.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <vector>

namespace kvc {
namespace numerics {

EvictPolicy EvictPolicy::forHead(size_t head) const {
  EvictPolicy p = *this;
  p.headBudgets.clear();
  if (!headBudgets.empty()) {
    KVC_NUMERICS_CHECK(head < headBudgets.size(), "KV head out of range");
    p.budget = headBudgets[head];
  }
  return p;
}

/// The rules for one head's policy.
static std::string checkHeadPolicy(const EvictPolicy &policy) {
  std::ostringstream os;
  if (policy.budget == 0)
    os << "eviction budget must be at least 1 token";
  else if (policy.sink + policy.window > policy.budget)
    os << "eviction sink (" << policy.sink << ") + window (" << policy.window
       << ") must not exceed the budget (" << policy.budget << ")";
  else if (policy.kind == EvictKind::Streaming &&
           policy.sink + policy.window != policy.budget)
    os << "streaming eviction keeps exactly sink + window tokens: budget must "
          "equal "
       << policy.sink + policy.window << ", got " << policy.budget;
  else if (policy.window == 0)
    os << "eviction window must be at least 1 token (the newest token is "
          "always kept)";
  return os.str();
}

std::string checkEvictPolicy(const EvictPolicy &policy) {
  if (policy.headBudgets.empty())
    return checkHeadPolicy(policy);
  if (policy.kind == EvictKind::Streaming)
    return "streaming eviction keeps sink + window tokens in every KV head: "
           "per-head budgets need a policy that ranks tokens (h2o, snapkv)";
  size_t largest = 0;
  for (size_t h = 0; h < policy.headBudgets.size(); ++h) {
    std::string err = checkHeadPolicy(policy.forHead(h));
    if (!err.empty())
      return "KV head " + std::to_string(h) + ": " + err;
    largest = std::max(largest, policy.headBudgets[h]);
  }
  if (policy.budget != largest)
    return "eviction budget (" + std::to_string(policy.budget) +
           ") must be the largest per-head budget (" + std::to_string(largest) +
           ")";
  return "";
}

std::string checkEvictPolicyHeads(const EvictPolicy &policy,
                                  size_t numKVHeads) {
  if (policy.headBudgets.empty() || policy.headBudgets.size() == numKVHeads)
    return "";
  return "eviction has " + std::to_string(policy.headBudgets.size()) +
         " per-head budgets for " + std::to_string(numKVHeads) + " KV heads";
}

std::string parseEvictPolicy(const std::string &spec, EvictPolicy &policy) {
  EvictPolicy p;
  std::vector<std::string> parts;
  std::stringstream ss(spec);
  for (std::string part; std::getline(ss, part, ':');)
    parts.push_back(part);
  if (parts.empty())
    return "empty eviction spec";
  if (parts[0] == "streaming")
    p.kind = EvictKind::Streaming;
  else if (parts[0] == "h2o")
    p.kind = EvictKind::H2O;
  else if (parts[0] == "snapkv")
    p.kind = EvictKind::SnapKV;
  else
    return "unknown eviction policy '" + parts[0] +
           "' (expected streaming, h2o or snapkv)";
  bool haveBudget = false;
  auto parseCount = [](const std::string &text, size_t &out) -> std::string {
    char *end = nullptr;
    unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || text[0] == '-')
      return "'" + text + "' is not a token count";
    out = value;
    return "";
  };
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string &part = parts[i];
    size_t eq = part.find('=');
    std::string key = part.substr(0, eq);
    if (eq == std::string::npos || eq + 1 == part.size())
      return "expected key=value in eviction spec, got '" + part + "'";
    std::string text = part.substr(eq + 1);
    if (key == "heads") {
      std::stringstream list(text);
      p.headBudgets.clear();
      for (std::string item; std::getline(list, item, ',');) {
        size_t budget;
        std::string err = parseCount(item, budget);
        if (!err.empty())
          return err;
        p.headBudgets.push_back(budget);
      }
      continue;
    }
    size_t value;
    std::string err = parseCount(text, value);
    if (!err.empty())
      return err;
    if (key == "sink")
      p.sink = value;
    else if (key == "window")
      p.window = value;
    else if (key == "budget") {
      p.budget = value;
      haveBudget = true;
    } else
      return "unknown eviction parameter '" + key +
             "' (expected sink, window, budget or heads)";
  }
  if (!haveBudget && !p.headBudgets.empty())
    p.budget = *std::max_element(p.headBudgets.begin(), p.headBudgets.end());
  else if (!haveBudget && p.kind == EvictKind::Streaming)
    p.budget = p.sink + p.window;
  std::string err = checkEvictPolicy(p);
  if (err.empty())
    policy = p;
  return err;
}

std::string formatEvictPolicy(const EvictPolicy &policy) {
  static const char *names[] = {"streaming", "h2o", "snapkv"};
  std::ostringstream os;
  os << names[static_cast<int>(policy.kind)] << ":sink=" << policy.sink
     << ":window=" << policy.window << ":budget=" << policy.budget;
  for (size_t h = 0; h < policy.headBudgets.size(); ++h)
    os << (h ? "," : ":heads=") << policy.headBudgets[h];
  return os.str();
}

size_t selectKeptTokens(const EvictPolicy &policy, const float *scores,
                        size_t numTokens, uint8_t *keep) {
  const std::string err = checkEvictPolicy(policy);
  KVC_NUMERICS_CHECK(err.empty(), err.c_str());
  KVC_NUMERICS_CHECK(policy.headBudgets.empty(),
                     "selectKeptTokens takes one KV head's policy (forHead)");
  KVC_NUMERICS_CHECK(policy.kind == EvictKind::Streaming || scores,
                     "score-based eviction needs scores");
  size_t live = 0;
  for (size_t t = 0; t < numTokens; ++t)
    live += keep[t] != 0;
  if (live <= policy.budget)
    return live;
  const size_t windowStart =
      numTokens > policy.window ? numTokens - policy.window : 0;
  auto isProtected = [&](size_t t) {
    return t < policy.sink || t >= windowStart;
  };
  size_t protectedLive = 0;
  std::vector<size_t> middle;
  for (size_t t = 0; t < numTokens; ++t) {
    if (!keep[t])
      continue;
    if (isProtected(t))
      ++protectedLive;
    else
      middle.push_back(t);
  }
  // sink + window <= budget, so the protected tokens always fit.
  size_t slots = policy.budget - protectedLive;
  if (policy.kind == EvictKind::Streaming)
    slots = 0;
  if (slots < middle.size()) {
    // Highest score first; ties to the later (more recent) token. Streaming
    // keeps no middle token, so there is nothing to rank.
    if (slots > 0)
      std::stable_sort(middle.begin(), middle.end(), [&](size_t a, size_t b) {
        if (scores[a] != scores[b])
          return scores[a] > scores[b];
        return a > b;
      });
    for (size_t i = slots; i < middle.size(); ++i)
      keep[middle[i]] = 0;
    return protectedLive + slots;
  }
  return protectedLive + middle.size();
}

std::string checkDemoteEncoding(const SideEncoding &side) {
  if (!side.isChannelAxis())
    return "";
  return side.toString() +
         " groups tokens along the channel axis, but a demoted token is "
         "encoded alone (use fp16, fp8 or token-axis quantization)";
}

void demoteRow(const SideEncoding &side, const float *row, unsigned headDim,
               float *out) {
  KVC_NUMERICS_CHECK(checkDemoteEncoding(side).empty(),
                     "demotion encoding must hold one token alone");
  std::vector<float> once = simulateCacheSide(row, 1, headDim, side, 0);
  std::copy(once.begin(), once.end(), out);
}

void accumulateAttentionMass(const float *probs, size_t numQueryHeads,
                             size_t numKVHeads, size_t numTokens,
                             float *mass) {
  KVC_NUMERICS_CHECK(numKVHeads > 0 && numQueryHeads % numKVHeads == 0,
                     "kv heads must divide query heads (GQA)");
  const size_t ratio = numQueryHeads / numKVHeads;
  for (size_t h = 0; h < numQueryHeads; ++h) {
    float *row = mass + (h / ratio) * numTokens;
    const float *p = probs + h * numTokens;
    for (size_t t = 0; t < numTokens; ++t)
      row[t] += p[t];
  }
}

} // namespace numerics
} // namespace kvc

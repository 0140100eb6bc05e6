//===- L2Prefetch.cpp - the split kernel's L2 prefetch of its pages -------===//

#include "L2Prefetch.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

using namespace mlir;
using namespace mlir::kvc;

namespace {
/// A side's pages [first, first + count) that hold compressed tokens of a
/// split, and how many of them the budget lets the block prefetch.
struct SplitPages {
  Value first, count;
  uint64_t blockBytes;
  /// min(count, max(1, budget / blockBytes)): the pages prefetched in all.
  Value budgeted;
};
} // namespace

static SplitPages splitPages(KernelBuilder &k, const SequenceSideView &side,
                             Value start, Value count, uint64_t budgetBytes) {
  const int64_t pageTokens = side.pageTokens;
  const uint64_t blockBytes = side.reader->getLayout().blockBytes;
  Value end = k.minU(k.add(start, count), side.compressed);
  Value first = k.div(start, pageTokens);
  Value spanned = k.sub(k.div(k.sub(end, k.index(1)), pageTokens), first);
  Value pages = arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::ult, start, end),
      k.add(spanned, k.index(1)), k.index(0));
  const int64_t most = std::max<uint64_t>(1, budgetBytes / blockBytes);
  return {first, pages, blockBytes, k.minU(pages, k.index(most))};
}

/// Prefetches the blocks of KV head `head` of pages [from, to) of `pages`
/// (indices from its first).
static void prefetchPages(KernelBuilder &k, const SequenceSideView &side,
                          Value head, const SplitPages &pages, Value from,
                          Value to, L2Prefetch mode, unsigned threads) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  const uint64_t blockBytes = pages.blockBytes;
  // Lines: block bytes / 128 rounded up, plus one: the addresses step by
  // 128 from the block's start (16-byte aligned only) and the last is
  // clamped to the block's last byte, so every line the block touches is
  // named and no address leaves the block.
  const int64_t perPage =
      mode == L2Prefetch::Bulk
          ? 1
          : int64_t((blockBytes + kL2LineBytes - 1) / kL2LineBytes) + 1;
  const ByteViews &pool = side.reader->getPool();
  Value firstPage = k.add(pages.first, from);
  // Item w + warps * l goes to lane l of warp w: a bulk prefetch's operands
  // are uniform registers, so a warp issues its lanes' one after another,
  // and the items are few (pages), so they are spread over the warps.
  const int64_t warps = threads / 32;
  Value tid = k.threadId();
  Value firstItem = k.add(k.mul(k.rem(tid, 32), warps), k.div(tid, 32));
  k.loop(firstItem, k.mul(k.sub(to, from), perPage), k.index(threads), {},
         [&](Value item, ValueRange) -> SmallVector<Value> {
           Value page =
               side.pageIndex(b, loc, k.add(firstPage, k.div(item, perPage)));
           Value held = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge,
                                              page, k.i32(0));
           k.ifThen(held, [&] {
             Value offset = side.blockBase(b, loc, head, page);
             if (mode == L2Prefetch::Lines)
               offset = k.add(offset,
                              k.minU(k.mul(k.rem(item, perPage), kL2LineBytes),
                                     k.index(blockBytes - 1)));
             Value address = LLVM::GEPOp::create(
                 b, loc, pool.base.getType(), b.getI8Type(), pool.base,
                 ValueRange{arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                                       offset)});
             if (mode == L2Prefetch::Lines)
               NVVM::PrefetchOp::create(
                   b, loc,
                   NVVM::PrefetchCacheLevelAttr::get(
                       b.getContext(), NVVM::PrefetchCacheLevel::L2),
                   /*evictPriority=*/nullptr, address, /*predicate=*/Value(),
                   /*tensormap=*/nullptr);
             else
               NVVM::CpAsyncBulkPrefetchOp::create(b, loc, address,
                                                   k.i32(int32_t(blockBytes)),
                                                   /*l2CacheHint=*/Value());
           });
           return {};
         });
}

/// The value pages prefetched at the start: those that fit in what the
/// keys' left of the budget.
static Value valuePagesAtStart(KernelBuilder &k, const SplitPages &keyPages,
                               const SplitPages &valuePages,
                               uint64_t budgetBytes) {
  Value keyBytes =
      k.minU(k.mul(keyPages.budgeted, int64_t(keyPages.blockBytes)),
             k.index(budgetBytes));
  Value fit = k.div(k.sub(k.index(budgetBytes), keyBytes),
                    int64_t(valuePages.blockBytes));
  return k.minU(valuePages.budgeted, fit);
}

void mlir::kvc::emitL2Prefetch(KernelBuilder &k, L2PrefetchPhase phase,
                               const SequenceSideView &keys,
                               const SequenceSideView &values, Value head,
                               Value start, Value count, L2Prefetch mode,
                               uint64_t budgetBytes, unsigned threads) {
  if (mode == L2Prefetch::None)
    return;
  SplitPages keyPages = splitPages(k, keys, start, count, budgetBytes);
  SplitPages valuePages = splitPages(k, values, start, count, budgetBytes);
  Value valuesFirst = valuePagesAtStart(k, keyPages, valuePages, budgetBytes);
  if (phase == L2PrefetchPhase::AfterKeyPass) {
    prefetchPages(k, values, head, valuePages, valuesFirst, valuePages.budgeted,
                  mode, threads);
    return;
  }
  prefetchPages(k, keys, head, keyPages, k.index(0), keyPages.budgeted, mode,
                threads);
  prefetchPages(k, values, head, valuePages, k.index(0), valuesFirst, mode,
                threads);
}

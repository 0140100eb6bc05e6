//===- L2Prefetch.cpp - the split kernel's L2 prefetch of its pages -------===//

#include "L2Prefetch.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

using namespace mlir;
using namespace mlir::kvc;

/// The pages [first, first + count) of a split's range that hold its
/// compressed tokens (keys and values alike: one page size, one count of
/// compressed tokens).
static std::pair<Value, Value> splitPages(KernelBuilder &k,
                                          const SequenceSideView &side,
                                          Value start, Value count) {
  const int64_t pageTokens = side.pageTokens;
  Value end = k.minU(k.add(start, count), side.compressed);
  Value first = k.div(start, pageTokens);
  Value spanned = k.sub(k.div(k.sub(end, k.index(1)), pageTokens), first);
  Value pages = arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::ult, start, end),
      k.add(spanned, k.index(1)), k.index(0));
  return {first, pages};
}

static uint64_t blockBytes(const SequenceSideView &side) {
  return side.reader->getLayout().blockBytes;
}

/// min(pages, max(1, budget / block bytes)): a side's pages prefetched in
/// all.
static Value budgetedPages(KernelBuilder &k, Value pages, uint64_t bytes,
                           uint64_t budgetBytes) {
  return k.minU(pages, k.index(std::max<uint64_t>(1, budgetBytes / bytes)));
}

/// Prefetches the blocks of KV head `head` of the split's pages [from, to)
/// (indices from its first page, `firstPage`).
static void prefetchPages(KernelBuilder &k, const SequenceSideView &side,
                          Value head, Value firstPage, Value from, Value to,
                          L2Prefetch mode, unsigned threads) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  const uint64_t blockBytes = ::blockBytes(side);
  // Lines: block bytes / 128 rounded up, plus one: the addresses step by
  // 128 from the block's start (16-byte aligned only) and the last is
  // clamped to the block's last byte, so every line the block touches is
  // named and no address leaves the block.
  const int64_t perPage =
      mode == L2Prefetch::Bulk
          ? 1
          : int64_t((blockBytes + kL2LineBytes - 1) / kL2LineBytes) + 1;
  const ByteViews &pool = side.reader->getPool();
  Value fromPage = k.add(firstPage, from);
  // Item w + warps * l goes to lane l of warp w: a bulk prefetch's operands
  // are uniform registers, so a warp issues its lanes' one after another,
  // and the items are few (pages), so they are spread over the warps.
  const int64_t warps = threads / 32;
  Value tid = k.threadId();
  Value firstItem = k.add(k.mul(k.rem(tid, 32), warps), k.div(tid, 32));
  k.loop(firstItem, k.mul(k.sub(to, from), perPage), k.index(threads), {},
         [&](Value item, ValueRange) -> SmallVector<Value> {
           Value page =
               side.pageIndex(b, loc, k.add(fromPage, k.div(item, perPage)));
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

void mlir::kvc::emitL2Prefetch(KernelBuilder &k, L2PrefetchPhase phase,
                               const SequenceSideView &keys,
                               const SequenceSideView &values, Value head,
                               Value start, Value count, L2Prefetch mode,
                               uint64_t budgetBytes, unsigned threads) {
  if (mode == L2Prefetch::None)
    return;
  auto [first, pages] = splitPages(k, keys, start, count);
  const uint64_t keyBytes = blockBytes(keys), valueBytes = blockBytes(values);
  Value keyPages = budgetedPages(k, pages, keyBytes, budgetBytes);
  Value valuePages = budgetedPages(k, pages, valueBytes, budgetBytes);
  // The value pages of the start: those that fit in what the keys' left of
  // the budget.
  Value keysUsed =
      k.minU(k.mul(keyPages, int64_t(keyBytes)), k.index(budgetBytes));
  Value valuesFirst =
      k.minU(valuePages,
             k.div(k.sub(k.index(budgetBytes), keysUsed), int64_t(valueBytes)));
  if (phase == L2PrefetchPhase::AfterKeyPass) {
    prefetchPages(k, values, head, first, valuesFirst, valuePages, mode,
                  threads);
    return;
  }
  prefetchPages(k, keys, head, first, k.index(0), keyPages, mode, threads);
  prefetchPages(k, values, head, first, k.index(0), valuesFirst, mode, threads);
}

//===- L2Prefetch.cpp - the split kernel's L2 prefetch of its pages -------===//

#include "L2Prefetch.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

using namespace mlir;
using namespace mlir::kvc;

void mlir::kvc::emitL2Prefetch(KernelBuilder &k, const SequenceSideView &side,
                               Value head, Value start, Value count,
                               L2Prefetch mode, uint64_t budgetBytes,
                               unsigned threads) {
  if (mode == L2Prefetch::None)
    return;
  OpBuilder &b = k.b;
  Location loc = k.loc;
  const uint64_t blockBytes = side.reader->getLayout().blockBytes;
  const int64_t maxPages = std::max<uint64_t>(1, budgetBytes / blockBytes);
  // Lines: block bytes / 128 rounded up, plus one: the addresses step by
  // 128 from the block's start (16-byte aligned only) and the last is
  // clamped to the block's last byte, so every line the block touches is
  // named and no address leaves the block.
  const int64_t perPage =
      mode == L2Prefetch::Bulk
          ? 1
          : int64_t((blockBytes + kL2LineBytes - 1) / kL2LineBytes) + 1;

  // Pages [first, first + pages) hold the compressed tokens of the split.
  const int64_t pageTokens = side.pageTokens;
  Value end = k.minU(k.add(start, count), side.compressed);
  Value first = k.div(start, pageTokens);
  Value spanned = k.sub(k.div(k.sub(end, k.index(1)), pageTokens), first);
  Value pages = arith::SelectOp::create(
      b, loc, k.cmp(arith::CmpIPredicate::ult, start, end),
      k.minU(k.add(spanned, k.index(1)), k.index(maxPages)), k.index(0));

  const ByteViews &pool = side.reader->getPool();
  k.loop(
      k.threadId(), k.mul(pages, perPage), k.index(threads), {},
      [&](Value item, ValueRange) -> SmallVector<Value> {
        Value page = side.pageIndex(b, loc, k.add(first, k.div(item, perPage)));
        Value held = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge,
                                           page, k.i32(0));
        k.ifThen(held, [&] {
          Value offset = side.blockBase(b, loc, head, page);
          if (mode == L2Prefetch::Lines)
            offset =
                k.add(offset, k.minU(k.mul(k.rem(item, perPage), kL2LineBytes),
                                     k.index(blockBytes - 1)));
          Value address = LLVM::GEPOp::create(
              b, loc, pool.base.getType(), b.getI8Type(), pool.base,
              ValueRange{
                  arith::IndexCastOp::create(b, loc, b.getI64Type(), offset)});
          if (mode == L2Prefetch::Lines)
            NVVM::PrefetchOp::create(
                b, loc,
                NVVM::PrefetchCacheLevelAttr::get(b.getContext(),
                                                  NVVM::PrefetchCacheLevel::L2),
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

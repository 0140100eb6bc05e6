//===- AttendToLoops.cpp - kvc.attend as loops over packed pages ----------===//
//
// For every (batch, query head, query) the generated code makes three passes
// over the visible tokens: scores (q . k dequantized from its page or from
// the fp16 residual buffer) and their maximum, the softmax weights, then the
// weighted sum of the dequantized values; in f32, like the GPU kernels.
//
//===----------------------------------------------------------------------===//

#include "Lowering.h"
#include "PageReader.h"
#include "RuntimeABI.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <functional>
#include <optional>
#include <limits>

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

namespace {

/// The values one attention needs inside its loops.
struct AttendState {
  /// `mass` is the attention-mass buffer (batch x kv_heads x tokens) or null.
  Value query, mask, out, scores, mass;
  Value numTokens, compressed, queryLen, group;
  ByteViews pageTable, kResidual, vResidual;
  /// The run of KV heads being read: its first head, and the byte offsets of
  /// that head's K and V blocks within a page (docs/layout.md, per-head
  /// encodings); the run's heads follow at the readers' block sizes.
  Value runFirst;
  uint64_t kRunOffset, vRunOffset;
  int64_t headDim;
  /// Query heads per KV head: the value spans follow the GPU kernels'.
  int64_t queryHeadsPerKVHead;
  const PageReader *keys, *values;
  uint64_t kPageBytes, vPageBytes, residualHeadBytes;
  double scale;
  std::optional<double> softcap;
  std::optional<int64_t> window;
  unsigned pageTokens;
  bool causal, maskPerHead;
  /// The cache declares eviction: tokens whose live bit is 0 are skipped
  /// (their pages may have gone back to the pool).
  bool evictable = false;
  /// Two-tier eviction: an evicted token is read from its demoted page
  /// (docs/layout.md 5.2) when the sequence has demoted pages.
  const num::CacheEncoding *demote = nullptr;
  Value demoteKeyTable, demoteValueTable; ///< fp8 tables or null
  uint64_t demoteKBlockBytes = 0, demoteVBlockBytes = 0;
  int64_t kvHeads = 0;
  Value binding, batchI64;
  const LoweringContext *lowering = nullptr;
};

struct AttendToLoops : public OpConversionPattern<AttendOp> {
  AttendToLoops(const TypeConverter &converter, MLIRContext *context,
                const LoweringContext &lowering)
      : OpConversionPattern(converter, context), lowering(lowering) {}

  LogicalResult
  matchAndRewrite(AttendOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override;

private:
  const LoweringContext &lowering;
};

} // namespace

static Value cIndex(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

static Value cF32(OpBuilder &b, Location loc, double value) {
  return arith::ConstantFloatOp::create(b, loc, b.getF32Type(),
                                        APFloat(float(value)));
}

/// Emits `for iv in [lb, ub)` carrying `inits`; `body` returns the yields.
static scf::ForOp
buildFor(OpBuilder &b, Location loc, Value lb, Value ub, ValueRange inits,
         function_ref<SmallVector<Value>(OpBuilder &, Location, Value,
                                         ValueRange)>
             body) {
  return scf::ForOp::create(
      b, loc, lb, ub, cIndex(b, loc, 1), inits,
      [&](OpBuilder &nb, Location nloc, Value iv, ValueRange args) {
        scf::YieldOp::create(nb, nloc, body(nb, nloc, iv, args));
      });
}

/// One side of the attended sequence as PageReader sees it: compressed
/// tokens from their pages, the others from the residual buffer.
static SequenceSideView sideView(const AttendState &s, const PageReader &reader,
                                 const ByteViews &residual, uint64_t pageBytes,
                                 uint64_t runOffset) {
  return SequenceSideView{&reader,       s.pageTable,  residual,
                          s.compressed,  pageBytes,    runOffset,
                          s.runFirst,    s.residualHeadBytes, s.pageTokens};
}

/// Where demoted token `token` of KV head `head` lives, one side, in the
/// demoted-page table `pages` (non-null): slot token % T of the head's block
/// in page token / T, K blocks of all heads first, then V blocks. Calls
/// `use` with a reader of that page, the block's byte offset and the slot.
static SmallVector<Value> withDemoted(
    OpBuilder &b, Location loc, const AttendState &s, bool value, Value pages,
    Value head, Value token,
    function_ref<SmallVector<Value>(const PageReader &, Value, Value)> use) {
  Value tokens = cIndex(b, loc, s.pageTokens);
  Value entry = arith::DivUIOp::create(b, loc, token, tokens);
  Type ptr = LLVM::LLVMPointerType::get(b.getContext());
  Value address = LLVM::GEPOp::create(
      b, loc, ptr, ptr, pages,
      ValueRange{arith::IndexCastOp::create(b, loc, b.getI64Type(), entry)});
  Value page = LLVM::LoadOp::create(b, loc, ptr, address, 8);
  const num::SideEncoding &side = value ? s.demote->value : s.demote->key;
  PageReader reader(side, unsigned(s.headDim), s.pageTokens, ByteViews{page},
                    value ? s.demoteValueTable : s.demoteKeyTable);
  uint64_t blockBytes = value ? s.demoteVBlockBytes : s.demoteKBlockBytes;
  Value blockBase = arith::MulIOp::create(b, loc, head,
                                          cIndex(b, loc, blockBytes));
  if (value)
    blockBase = arith::AddIOp::create(
        b, loc, blockBase, cIndex(b, loc, s.kvHeads * s.demoteKBlockBytes));
  Value slot = arith::RemUIOp::create(b, loc, token, tokens);
  return use(reader, blockBase, slot);
}

/// `cond ? thenValues() : elseValues()` as an scf.if: only the taken branch
/// runs, so it may read memory the other condition rules out.
static SmallVector<Value> ifThenElseValues(
    OpBuilder &b, Location loc, Value cond,
    function_ref<SmallVector<Value>(OpBuilder &, Location)> thenValues,
    function_ref<SmallVector<Value>(OpBuilder &, Location)> elseValues) {
  auto ifOp = scf::IfOp::create(
      b, loc, cond,
      [&](OpBuilder &tb, Location tl) {
        scf::YieldOp::create(tb, tl, thenValues(tb, tl));
      },
      [&](OpBuilder &eb, Location el) {
        scf::YieldOp::create(eb, el, elseValues(eb, el));
      });
  return SmallVector<Value>(ifOp.getResults());
}

/// ifThenElseValues with one value.
static Value ifThenElse(OpBuilder &b, Location loc, Value cond,
                        function_ref<Value(OpBuilder &, Location)> thenValue,
                        function_ref<Value(OpBuilder &, Location)> elseValue) {
  return ifThenElseValues(
      b, loc, cond,
      [&](OpBuilder &tb, Location tl) {
        return SmallVector<Value>{thenValue(tb, tl)};
      },
      [&](OpBuilder &eb, Location el) {
        return SmallVector<Value>{elseValue(eb, el)};
      })[0];
}

/// A (sequence, KV head)'s live-token bitmap; null: every token is live.
struct LiveBitmap {
  Value pointer; ///< !llvm.ptr from kvc_rt_mlir_live_bitmap
  Value isNull;  ///< i1, tested once per query rather than per token
};

/// `live ? live() : dead()` where `live` is token `token`'s bit in `bitmap`.
/// Only the taken branch runs, so an evicted token's page is never read.
static SmallVector<Value>
ifLiveValues(OpBuilder &b, Location loc, const LiveBitmap &bitmap, Value token,
             function_ref<SmallVector<Value>(OpBuilder &, Location)> live,
             function_ref<SmallVector<Value>(OpBuilder &, Location)> dead) {
  Value bit = ifThenElse(
      b, loc, bitmap.isNull,
      [&](OpBuilder &tb, Location tl) -> Value {
        return arith::ConstantIntOp::create(tb, tl, 1, 1);
      },
      [&](OpBuilder &eb, Location el) -> Value {
        Value byteIndex =
            arith::ShRUIOp::create(eb, el, token, cIndex(eb, el, 3));
        Value byte =
            ByteViews{bitmap.pointer}.load(eb, el, eb.getI8Type(), byteIndex);
        Value shift = arith::IndexCastOp::create(
            eb, el, eb.getI8Type(),
            arith::AndIOp::create(eb, el, token, cIndex(eb, el, 7)));
        Value bits = arith::AndIOp::create(
            eb, el, arith::ShRUIOp::create(eb, el, byte, shift),
            arith::ConstantIntOp::create(eb, el, 1, 8));
        return arith::TruncIOp::create(eb, el, eb.getI1Type(), bits);
      });
  return ifThenElseValues(b, loc, bit, live, dead);
}

/// The loops for one (batch b, query head h, query i).
static void buildQuery(OpBuilder &b, Location loc, const AttendState &s,
                       Value batch, Value head, Value query) {
  Value zero = cIndex(b, loc, 0), one = cIndex(b, loc, 1);
  Value kvHead = arith::DivUIOp::create(b, loc, head, s.group);
  std::optional<LiveBitmap> bitmap;
  if (s.evictable) {
    Type ptr = LLVM::LLVMPointerType::get(b.getContext());
    Value pointer = s.lowering->call(
        b, loc, abi::kLiveBitmap, ptr,
        {s.binding, s.batchI64,
         arith::IndexCastOp::create(b, loc, b.getI64Type(), kvHead)});
    bitmap = LiveBitmap{pointer, LLVM::ICmpOp::create(
                                     b, loc, LLVM::ICmpPredicate::eq, pointer,
                                     LLVM::ZeroOp::create(b, loc, ptr))};
  }
  // Two-tier: the sequence's demoted pages (null: its evicted tokens are
  // dropped), tested once per query.
  Value demotedPages, noDemotedPages;
  if (s.demote) {
    Type ptr = LLVM::LLVMPointerType::get(b.getContext());
    auto descriptor = [&](const num::SideEncoding &side) -> Value {
      return arith::ConstantIntOp::create(b, loc, abi::packSideEncoding(side),
                                          64);
    };
    demotedPages = s.lowering->call(
        b, loc, abi::kDemotedPages, ptr,
        {s.binding, s.batchI64, descriptor(s.demote->key),
         descriptor(s.demote->value)});
    noDemotedPages =
        LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::eq, demotedPages,
                             LLVM::ZeroOp::create(b, loc, ptr));
  }
  // Query i sits at position n - q_len + i.
  Value position = arith::AddIOp::create(
      b, loc, arith::SubIOp::create(b, loc, s.numTokens, s.queryLen), query);
  Value upper = s.numTokens;
  if (s.causal)
    upper = arith::MinUIOp::create(b, loc, upper,
                                   arith::AddIOp::create(b, loc, position, one));
  Value lower = zero;
  if (s.window) {
    // Keys at positions > position - window.
    Value start = arith::SubIOp::create(
        b, loc, arith::AddIOp::create(b, loc, position, one),
        cIndex(b, loc, *s.window));
    lower = arith::MaxSIOp::create(b, loc, start, zero);
  }
  Value negInf = cF32(b, loc, -std::numeric_limits<double>::infinity());
  Value zeroF = cF32(b, loc, 0.0);
  Value headDim = cIndex(b, loc, s.headDim);

  // Pass 1: scores and their maximum (a dropped token scores -inf; a
  // demoted one is scored from its demoted page).
  /// Folds a ChannelChunkFn over the channels of one token's key.
  using KeyRowFolder =
      function_ref<Value(OpBuilder &, Location, Value init, ChannelChunkFn)>;
  auto computeScoreWith = [&](OpBuilder &b1, Location l1, Value token,
                              KeyRowFolder foldKey) -> Value {
    Value dot = foldKey(
        b1, l1, zeroF,
        [&](Value firstChannel, std::optional<int64_t>, ArrayRef<Value> keys,
            ValueRange acc) -> SmallVector<Value> {
          Value sum = acc[0];
          for (auto [i, k] : llvm::enumerate(keys)) {
            Value channel =
                arith::AddIOp::create(b1, l1, firstChannel, cIndex(b1, l1, i));
            Value q = loadAsF32(b1, l1, s.query,
                                ValueRange{batch, head, query, channel});
            Value key = k;
            if (s.lowering->keyReadsInParts) {
              // The tensor-core pass's inputs: q and k rounded to fp16
              // (their product is exact in f32).
              q = roundToHalf(b1, l1, q);
              key = roundToHalf(b1, l1, key);
            }
            sum = arith::AddFOp::create(b1, l1, sum,
                                        arith::MulFOp::create(b1, l1, q, key));
          }
          return {sum};
        });
    Value score = arith::MulFOp::create(b1, l1, dot, cF32(b1, l1, s.scale));
    if (s.softcap) {
      Value cap = cF32(b1, l1, *s.softcap);
      score = arith::MulFOp::create(
          b1, l1, cap,
          math::TanhOp::create(b1, l1,
                               arith::DivFOp::create(b1, l1, score, cap)));
    }
    if (s.mask) {
      Value maskHead = s.maskPerHead ? head : zero;
      score = arith::AddFOp::create(
          b1, l1, score,
          loadAsF32(b1, l1, s.mask, ValueRange{batch, maskHead, query, token}));
    }
    return score;
  };
  auto computeScore = [&](OpBuilder &b1, Location l1, Value token) -> Value {
    return computeScoreWith(
        b1, l1, token,
        [&](OpBuilder &rb, Location rl, Value init, ChannelChunkFn fn) {
          SequenceSideView keys =
              sideView(s, *s.keys, s.kResidual, s.kPageBytes, s.kRunOffset);
          if (!s.lowering->keyReadsInParts)
            return keys.foldChannels(rb, rl, kvHead, token,
                                     s.keys->wholeRow(rb, rl), init, fn)[0];
          // key-reads=parts: the tensor-core key pass's reads (16 channels
          // at a time; channel-axis 2/4/8-bit keys in its token pairs).
          Value sum = init;
          for (int64_t first = 0; first < s.headDim; first += 16) {
            ChannelSpan part{cIndex(rb, rl, first), 16};
            sum = (s.keys->readsTokenPairs()
                       ? keys.foldTokenPairChannels(rb, rl, kvHead, token, part,
                                                    sum, fn)
                       : keys.foldChannels(rb, rl, kvHead, token, part, sum,
                                           fn))[0];
          }
          return sum;
        });
  };
  // An evicted token: -inf, or its demoted key's score (two-tier).
  auto evictedScore = [&](OpBuilder &b1, Location l1, Value token) -> Value {
    if (!s.demote)
      return negInf;
    return ifThenElse(
        b1, l1, noDemotedPages, [&](OpBuilder &, Location) { return negInf; },
        [&](OpBuilder &db, Location dl) {
          return computeScoreWith(
              db, dl, token,
              [&](OpBuilder &rb, Location rl, Value init, ChannelChunkFn fn) {
                return withDemoted(
                    rb, rl, s, /*value=*/false, demotedPages, kvHead, token,
                    [&](const PageReader &reader, Value blockBase, Value slot) {
                      return reader.foldCompressedRow(rb, rl, blockBase, slot,
                                                      reader.wholeRow(rb, rl),
                                                      init, fn);
                    })[0];
              });
        });
  };
  Value maxScore =
      buildFor(b, loc, lower, upper, negInf,
               [&](OpBuilder &b1, Location l1, Value token,
                   ValueRange args) -> SmallVector<Value> {
                 Value score = bitmap ? ifLiveValues(
                                            b1, l1, *bitmap, token,
                                            [&](OpBuilder &lb, Location ll) {
                                              return SmallVector<Value>{
                                                  computeScore(lb, ll, token)};
                                            },
                                            [&](OpBuilder &eb, Location el) {
                                              return SmallVector<Value>{
                                                  evictedScore(eb, el, token)};
                                            })[0]
                                      : computeScore(b1, l1, token);
                 memref::StoreOp::create(b1, l1, score, s.scores, token);
                 return {arith::MaximumFOp::create(b1, l1, args[0], score)};
               })
          .getResult(0);

  // Pass 2: softmax weights (stored over the scores) and their sum.
  Value sum =
      buildFor(b, loc, lower, upper, zeroF,
               [&](OpBuilder &b1, Location l1, Value token,
                   ValueRange args) -> SmallVector<Value> {
                 Value score = memref::LoadOp::create(b1, l1, s.scores, token);
                 Value weight = math::ExpOp::create(
                     b1, l1, arith::SubFOp::create(b1, l1, score, maxScore));
                 memref::StoreOp::create(b1, l1, weight, s.scores, token);
                 return {arith::AddFOp::create(b1, l1, args[0], weight)};
               })
          .getResult(0);

  // The attention mass: each key's probability, summed over its query heads.
  if (s.mass)
    buildFor(b, loc, lower, upper, ValueRange{},
             [&](OpBuilder &b1, Location l1, Value token,
                 ValueRange) -> SmallVector<Value> {
               Value weight = memref::LoadOp::create(b1, l1, s.scores, token);
               Value p = arith::DivFOp::create(b1, l1, weight, sum);
               SmallVector<Value> at = {batch, kvHead, token};
               Value old = memref::LoadOp::create(b1, l1, s.mass, at);
               memref::StoreOp::create(
                   b1, l1, arith::AddFOp::create(b1, l1, old, p), s.mass, at);
               return {};
             });

  // Pass 3: the weighted sum of values, a span of channels at a time, read
  // as the GPU value pass reads it (value-reads=f16: D/8-channel slabs).
  const bool halfPairs = s.lowering->valuesInHalf &&
                         s.values->readsHalfPairs() &&
                         (s.headDim == 64 || s.headDim == 128);
  const int64_t spanChannels =
      halfPairs ? s.headDim / 8
                : valueSpanChannels(s.headDim, s.queryHeadsPerKVHead);
  scf::ForOp::create(
      b, loc, zero, headDim, cIndex(b, loc, spanChannels), ValueRange{},
      [&](OpBuilder &b1, Location l1, Value firstChannel, ValueRange) {
        ChannelSpan span{firstChannel, spanChannels};
        SmallVector<Value> zeros(spanChannels, zeroF);
        auto channelAt = [&](OpBuilder &cb, Location cl, int64_t i) -> Value {
          return arith::AddIOp::create(cb, cl, firstChannel, cIndex(cb, cl, i));
        };
        scf::ForOp tokens = scf::ForOp::create(
            b1, l1, lower, upper, one, zeros,
            [&](OpBuilder &b2, Location l2, Value token, ValueRange acc) {
              // acc[c] + weight * value of channel c of a chunk (spans are
              // unrolled); value-reads=f16: the value rounded to fp16.
              const bool inHalf = s.lowering->valuesInHalf;
              auto weighted = [inHalf](OpBuilder &ab, Location al,
                                       Value weight) {
                return [&ab, al, weight,
                        inHalf](Value, std::optional<int64_t> offset,
                                ArrayRef<Value> values, ValueRange sums) {
                  SmallVector<Value> next(sums);
                  for (auto [i, v] : llvm::enumerate(values)) {
                    Value value = inHalf ? roundToHalf(ab, al, v) : v;
                    next[*offset + i] = arith::AddFOp::create(
                        ab, al, sums[*offset + i],
                        arith::MulFOp::create(ab, al, weight, value));
                  }
                  return next;
                };
              };
              auto accumulate = [&](OpBuilder &ab,
                                    Location al) -> SmallVector<Value> {
                Value weight = memref::LoadOp::create(ab, al, s.scores, token);
                SequenceSideView view = sideView(s, *s.values, s.vResidual,
                                                 s.vPageBytes, s.vRunOffset);
                if (!halfPairs)
                  return view.foldChannels(ab, al, kvHead, token, span, acc,
                                           weighted(ab, al, weight));
                // Pair k holds the channels of halfPairOrder()[k].
                SmallVector<Value> pairs =
                    view.halfPairs(ab, al, kvHead, token, span);
                SmallVector<Value> next(acc);
                for (auto [pair, channels] :
                     llvm::zip(pairs, s.values->halfPairOrder(spanChannels))) {
                  int64_t halves[] = {channels.first, channels.second};
                  for (int64_t h = 0; h < 2; ++h) {
                    Value half = LLVM::ExtractElementOp::create(
                        ab, al, pair,
                        LLVM::ConstantOp::create(ab, al, ab.getI32Type(),
                                                 ab.getI32IntegerAttr(h)));
                    Value value =
                        arith::ExtFOp::create(ab, al, ab.getF32Type(), half);
                    next[halves[h]] = arith::AddFOp::create(
                        ab, al, acc[halves[h]],
                        arith::MulFOp::create(ab, al, weight, value));
                  }
                }
                return next;
              };
              // An evicted token: nothing, or its demoted value (two-tier).
              auto evicted = [&](OpBuilder &eb,
                                 Location el) -> SmallVector<Value> {
                if (!s.demote)
                  return SmallVector<Value>(acc);
                return ifThenElseValues(
                    eb, el, noDemotedPages,
                    [&](OpBuilder &, Location) {
                      return SmallVector<Value>(acc);
                    },
                    [&](OpBuilder &db, Location dl) {
                      auto fn = weighted(
                          db, dl,
                          memref::LoadOp::create(db, dl, s.scores, token));
                      return withDemoted(db, dl, s, /*value=*/true,
                                         demotedPages, kvHead, token,
                                         [&](const PageReader &reader,
                                             Value blockBase, Value slot) {
                                           return reader.foldCompressedRow(
                                               db, dl, blockBase, slot, span,
                                               acc, fn);
                                         });
                    });
              };
              scf::YieldOp::create(b2, l2,
                                   bitmap ? ifLiveValues(b2, l2, *bitmap, token,
                                                         accumulate, evicted)
                                          : accumulate(b2, l2));
            });
        Type outType = cast<MemRefType>(s.out.getType()).getElementType();
        for (int64_t i = 0; i < spanChannels; ++i) {
          Value result =
              arith::DivFOp::create(b1, l1, tokens.getResult(i), sum);
          if (outType != result.getType())
            result = arith::TruncFOp::create(b1, l1, outType, result);
          memref::StoreOp::create(
              b1, l1, result, s.out,
              ValueRange{batch, head, query, channelAt(b1, l1, i)});
        }
        scf::YieldOp::create(b1, l1);
      });
}

/// Stores NaN in every element of `out` (batch x ...) of sequence `batch`.
static void fillSequenceWithNaN(OpBuilder &b, Location loc, Value out,
                                Value batch) {
  auto type = cast<MemRefType>(out.getType());
  auto elementType = cast<FloatType>(type.getElementType());
  Value nan = arith::ConstantFloatOp::create(
      b, loc, elementType, APFloat::getNaN(elementType.getFloatSemantics()));
  SmallVector<Value> indices = {batch};
  std::function<void(OpBuilder &, Location, unsigned)> loop =
      [&](OpBuilder &lb, Location ll, unsigned dim) {
        if (dim == type.getRank()) {
          memref::StoreOp::create(lb, ll, nan, out, indices);
          return;
        }
        Value size = memref::DimOp::create(lb, ll, out, dim);
        buildFor(lb, ll, cIndex(lb, ll, 0), size, ValueRange{},
                 [&](OpBuilder &nb, Location nl, Value iv,
                     ValueRange) -> SmallVector<Value> {
                   indices.push_back(iv);
                   loop(nb, nl, dim + 1);
                   indices.pop_back();
                   return {};
                 });
      };
  loop(b, loc, 1);
}

LogicalResult
AttendToLoops::matchAndRewrite(AttendOp op, OpAdaptor adaptor,
                               ConversionPatternRewriter &rewriter) const {
  Location loc = op.getLoc();
  CacheType cacheType = op.getCache().getType();
  // The pass checked the encoding against the page size before converting.
  num::CacheEncoding encoding;
  if (EncodingAttr attr = cacheType.getEncoding())
    encoding = attr.toNumerics();
  unsigned headDim = cacheType.getHeadDim();

  Type i64 = rewriter.getI64Type();
  Type ptr = LLVM::LLVMPointerType::get(rewriter.getContext());
  Value binding = adaptor.getCache();

  auto toBuffer = [&](Value tensor) -> Value {
    auto type = cast<RankedTensorType>(tensor.getType());
    return bufferization::ToBufferOp::create(
        rewriter, loc, MemRefType::get(type.getShape(), type.getElementType()),
        tensor, /*read_only=*/true);
  };
  Value queryBuffer = toBuffer(op.getQuery());
  Value maskBuffer = op.getMask() ? toBuffer(op.getMask()) : Value();
  RankedTensorType resultType = op.getResult().getType();
  SmallVector<Value> dynamicSizes;
  for (auto [index, size] : llvm::enumerate(resultType.getShape()))
    if (ShapedType::isDynamic(size))
      dynamicSizes.push_back(
          memref::DimOp::create(rewriter, loc, queryBuffer, index));
  Value out = memref::AllocOp::create(
      rewriter, loc,
      MemRefType::get(resultType.getShape(), resultType.getElementType()),
      dynamicSizes);

  EncodingAttr encodingAttr = cacheType.getEncoding();
  bool evictable = encodingAttr && encodingAttr.getEvict();
  std::optional<num::CacheEncoding> demote;
  if (evictable)
    demote = encodingAttr.getEvictPolicy().getDemoteNumerics();
  num::BlockLayout demoteKBlock, demoteVBlock;
  if (demote) {
    demoteKBlock =
        num::computeBlockLayout(demote->key, headDim, lowering.pageTokens);
    demoteVBlock =
        num::computeBlockLayout(demote->value, headDim, lowering.pageTokens);
  }
  // The mass result covers the longest sequence; shorter ones leave zeros.
  Value mass;
  if (Value massResult = op.getMass()) {
    Value batchSize = memref::DimOp::create(rewriter, loc, queryBuffer, 0);
    Value longest =
        buildFor(rewriter, loc, cIndex(rewriter, loc, 0), batchSize,
                 cIndex(rewriter, loc, 0),
                 [&](OpBuilder &b, Location l, Value batch,
                     ValueRange args) -> SmallVector<Value> {
                   Value tokens = lowering.call(
                       b, l, abi::kNumTokens, i64,
                       {binding, arith::IndexCastOp::create(b, l, i64, batch)});
                   tokens = arith::IndexCastOp::create(b, l, b.getIndexType(),
                                                       tokens);
                   return {arith::MaxUIOp::create(b, l, args[0], tokens)};
                 })
            .getResult(0);
    auto massType = cast<RankedTensorType>(massResult.getType());
    SmallVector<Value> sizes;
    if (massType.isDynamicDim(0))
      sizes.push_back(batchSize);
    sizes.push_back(longest);
    mass = memref::AllocOp::create(
        rewriter, loc,
        MemRefType::get(massType.getShape(), massType.getElementType()),
        sizes);
    linalg::FillOp::create(rewriter, loc, ValueRange{cF32(rewriter, loc, 0.0)},
                           ValueRange{mass});
  }
  const SmallVector<num::CacheEncoding> &headEncodings =
      lowering.headEncodings.at(op);
  CachePageLayout pages(headEncodings, headDim, lowering.pageTokens);
  int64_t kvHeads = cacheType.getNumKVHeads();
  Value layoutOk =
      emitLayoutCheck(rewriter, loc, lowering, abi::kCheckLayout, binding,
                      pages, encoding.residual, kvHeads, headDim);

  auto ifOp = scf::IfOp::create(
      rewriter, loc, layoutOk,
      [&](OpBuilder &b, Location l) {
        Value kSide = arith::ConstantIntOp::create(b, l, 0, 32);
        Value vSide = arith::ConstantIntOp::create(b, l, 1, 32);
        ByteViews kPool{lowering.call(b, l, abi::kPool, ptr, {binding, kSide})};
        ByteViews vPool{lowering.call(b, l, abi::kPool, ptr, {binding, vSide})};
        Value demoteKeyTable, demoteValueTable;
        if (demote) {
          demoteKeyTable = lowering.getFP8Table(b, l, demote->key);
          demoteValueTable = lowering.getFP8Table(b, l, demote->value);
        }
        // Consecutive KV heads with one encoding share their loops.
        struct HeadRun {
          unsigned first, count;
          PageReader keys, values;
          uint64_t kOffset, vOffset;
        };
        SmallVector<HeadRun> runs;
        for (auto [head, layout] : llvm::enumerate(pages.heads)) {
          if (!runs.empty() &&
              pages.heads[runs.back().first].encoding == layout.encoding) {
            ++runs.back().count;
            continue;
          }
          runs.push_back(HeadRun{
              unsigned(head), 1,
              PageReader(layout.encoding.key, headDim, lowering.pageTokens,
                         kPool,
                         lowering.getFP8Table(b, l, layout.encoding.key)),
              PageReader(layout.encoding.value, headDim, lowering.pageTokens,
                         vPool,
                         lowering.getFP8Table(b, l, layout.encoding.value)),
              layout.kOffset, layout.vOffset});
          // The tensor-core key pass's parts are unrolled; so are these.
          if (lowering.keyReadsInParts)
            runs.back().keys.setMaxUnrolledSpan(16);
        }
        Value batchSize = memref::DimOp::create(b, l, queryBuffer, 0);
        Value queryLen = memref::DimOp::create(b, l, queryBuffer, 2);
        buildFor(
            b, l, cIndex(b, l, 0), batchSize, ValueRange{},
            [&](OpBuilder &bb, Location bl, Value batch,
                ValueRange) -> SmallVector<Value> {
              Value batchI64 = arith::IndexCastOp::create(bb, bl, i64, batch);
              auto scalar = [&](StringRef name) -> Value {
                Value value =
                    lowering.call(bb, bl, name, i64, {binding, batchI64});
                return arith::IndexCastOp::create(bb, bl, bb.getIndexType(),
                                                  value);
              };
              auto pointerCall = [&](StringRef name,
                                     ValueRange args) -> ByteViews {
                return {lowering.call(bb, bl, name, ptr, args)};
              };
              AttendState s;
              s.query = queryBuffer;
              s.mask = maskBuffer;
              s.maskPerHead =
                  maskBuffer &&
                  cast<MemRefType>(maskBuffer.getType()).getDimSize(1) != 1;
              s.out = out;
              s.mass = mass;
              s.evictable = evictable;
              s.kvHeads = kvHeads;
              if (demote) {
                s.demote = &*demote;
                s.demoteKeyTable = demoteKeyTable;
                s.demoteValueTable = demoteValueTable;
                s.demoteKBlockBytes = demoteKBlock.blockBytes;
                s.demoteVBlockBytes = demoteVBlock.blockBytes;
              }
              s.binding = binding;
              s.batchI64 = batchI64;
              s.lowering = &lowering;
              s.numTokens = scalar(abi::kNumTokens);
              s.compressed = scalar(abi::kCompressedTokens);
              s.queryLen = queryLen;
              s.queryHeadsPerKVHead = resultType.getDimSize(1) / kvHeads;
              s.group = cIndex(bb, bl, s.queryHeadsPerKVHead);
              s.pageTable = pointerCall(abi::kPageTable, {binding, batchI64});
              s.kResidual =
                  pointerCall(abi::kResidual, {binding, batchI64, kSide});
              s.vResidual =
                  pointerCall(abi::kResidual, {binding, batchI64, vSide});
              s.headDim = headDim;
              s.pageTokens = lowering.pageTokens;
              s.kPageBytes = pages.kPageBytes;
              s.vPageBytes = pages.vPageBytes;
              s.residualHeadBytes =
                  num::residualStagingBytes(encoding.residual, headDim);
              s.scale = op.getEffectiveScale();
              if (auto softcap = op.getSoftcap())
                s.softcap = softcap->convertToDouble();
              if (auto window = op.getWindow())
                s.window = *window;
              s.causal = op.getCausal();
              s.scores = memref::AllocOp::create(
                  bb, bl,
                  MemRefType::get({ShapedType::kDynamic}, bb.getF32Type()),
                  ValueRange{s.numTokens});
              auto attendSequence = [&](OpBuilder &ab, Location al) {
                for (const HeadRun &run : runs) {
                  AttendState rs = s;
                  rs.keys = &run.keys;
                  rs.values = &run.values;
                  rs.runFirst = cIndex(ab, al, run.first);
                  rs.kRunOffset = run.kOffset;
                  rs.vRunOffset = run.vOffset;
                  // The query heads of the run's KV heads.
                  int64_t group = resultType.getDimSize(1) / kvHeads;
                  buildFor(
                      ab, al, cIndex(ab, al, run.first * group),
                      cIndex(ab, al, (run.first + run.count) * group),
                      ValueRange{},
                      [&](OpBuilder &hb, Location hl, Value head,
                          ValueRange) -> SmallVector<Value> {
                        buildFor(hb, hl, cIndex(hb, hl, 0), queryLen,
                                 ValueRange{},
                                 [&](OpBuilder &qb, Location ql, Value query,
                                     ValueRange) -> SmallVector<Value> {
                                   buildQuery(qb, ql, rs, batch, head, query);
                                   return {};
                                 });
                        return {};
                      });
                }
              };
              if (!maskBuffer) {
                attendSequence(bb, bl);
                return {};
              }
              // The mask covers the tokens of the cache, which only the
              // runtime knows (a dynamic mask takes its size from another
              // tensor, such as attention_mask): a sequence whose token
              // count differs gets NaN outputs rather than reads past the
              // mask.
              Value maskTokens = memref::DimOp::create(bb, bl, maskBuffer, 3);
              Value maskFits = arith::CmpIOp::create(
                  bb, bl, arith::CmpIPredicate::eq, maskTokens, s.numTokens);
              scf::IfOp::create(
                  bb, bl, maskFits,
                  [&](OpBuilder &tb, Location tl) {
                    attendSequence(tb, tl);
                    scf::YieldOp::create(tb, tl);
                  },
                  [&](OpBuilder &eb, Location el) {
                    fillSequenceWithNaN(eb, el, out, batch);
                    if (mass)
                      fillSequenceWithNaN(eb, el, mass, batch);
                    scf::YieldOp::create(eb, el);
                  });
              return {};
            });
        scf::YieldOp::create(b, l);
      },
      [&](OpBuilder &b, Location l) {
        // The runtime recorded the mismatch in the binding; make the output
        // unmistakably wrong rather than plausible.
        Value nan = arith::ConstantFloatOp::create(
            b, l, cast<FloatType>(resultType.getElementType()),
            APFloat::getNaN(cast<FloatType>(resultType.getElementType())
                                .getFloatSemantics()));
        linalg::FillOp::create(b, l, ValueRange{nan}, ValueRange{out});
        if (mass)
          linalg::FillOp::create(
              b, l,
              ValueRange{arith::ConstantFloatOp::create(
                  b, l, b.getF32Type(),
                  APFloat::getNaN(APFloat::IEEEsingle()))},
              ValueRange{mass});
        scf::YieldOp::create(b, l);
      });
  (void)ifOp;
  SmallVector<Value> results = {bufferization::ToTensorOp::create(
      rewriter, loc, resultType, out, /*restrict=*/true, /*writable=*/true)};
  if (mass)
    results.push_back(bufferization::ToTensorOp::create(
        rewriter, loc, op.getMass().getType(), mass, /*restrict=*/true,
        /*writable=*/true));
  rewriter.replaceOp(op, results);
  return success();
}

void mlir::kvc::populateAttendToLoopsPattern(RewritePatternSet &patterns,
                                             const TypeConverter &converter,
                                             const LoweringContext &context) {
  patterns.add<AttendToLoops>(converter, patterns.getContext(), context);
}

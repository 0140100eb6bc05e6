//===- TensorCorePasses.cpp - mma.sync passes of the split kernel ---------===//
//
// The split kernel's key pass (key-product=mma) and value pass
// (value-product=mma) on tensor cores: nvgpu.mma.sync with shape m16n8k16,
// fp16 A and B, f32 accumulators, which gpu-lower-to-nvvm lowers to
// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 on sm_80 and sm_90a.
// Lane (g, t) = (lane / 4, lane % 4) of a warp holds (PTX ISA fragment
// layouts) A's rows g and g + 8 at reduction indices {2t, 2t+1} (registers
// 0 and 1) and {2t+8, 2t+9} (registers 2 and 3), B's column g at the same
// reduction indices, and C's rows g and g + 8 at columns 2t and 2t + 1.
// Elements are read with PageReader (the CPU loops' reader and numerics)
// and rounded to fp16 pairs.
//
//===----------------------------------------------------------------------===//

#include "TensorCorePasses.h"

#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::kvc;

/// Why a tensor-core pass (`pass`: "key" or "value") cannot serve a site,
/// or "".
static std::string tensorCoreUnsupported(int64_t headDim,
                                         int64_t queryHeadsPerKVHead,
                                         StringRef pass) {
  if (headDim != 64 && headDim != 128)
    return "head_dim " + std::to_string(headDim) + " (the tensor-core " +
           pass.str() + " pass takes 64 or 128)";
  if (queryHeadsPerKVHead > 8)
    return std::to_string(queryHeadsPerKVHead) +
           " query heads per KV head (the tensor-core " + pass.str() +
           " pass takes up to 8, the N of one m16n8k16 tile)";
  return "";
}

std::string mlir::kvc::tensorCoreKeysUnsupported(int64_t headDim,
                                                 int64_t queryHeadsPerKVHead) {
  return tensorCoreUnsupported(headDim, queryHeadsPerKVHead, "key");
}

std::string
mlir::kvc::tensorCoreValuesUnsupported(int64_t headDim,
                                       int64_t queryHeadsPerKVHead) {
  return tensorCoreUnsupported(headDim, queryHeadsPerKVHead, "value");
}

/// Two f32 values as an fp16 pair (cvt.rn.f16x2.f32).
static Value packHalfPair(KernelBuilder &k, Value x, Value y) {
  Type f32 = k.b.getF32Type();
  Value pair = vector::FromElementsOp::create(
      k.b, k.loc, VectorType::get({2}, f32), ValueRange{x, y});
  return arith::TruncFOp::create(k.b, k.loc,
                                 VectorType::get({2}, k.b.getF16Type()), pair);
}

/// A constant vector of `type` filled with zeros.
static Value zeros(KernelBuilder &k, VectorType type) {
  return arith::ConstantOp::create(
      k.b, k.loc, type,
      DenseElementsAttr::get(type, k.b.getZeroAttr(type.getElementType())));
}

/// fp16 pairs as an mma fragment (vector<pairs x 2 x f16>).
static Value fragment(KernelBuilder &k, ArrayRef<Value> pairs) {
  auto type = VectorType::get({int64_t(pairs.size()), 2}, k.b.getF16Type());
  Value result = zeros(k, type);
  for (auto [i, pair] : llvm::enumerate(pairs))
    result = vector::InsertOp::create(k.b, k.loc, pair, result, int64_t(i));
  return result;
}

/// One fp16 pair as a one-register mma fragment (vector<1x2xf16>), built
/// from its two halves: inserted whole, canonicalization turns it into a
/// vector.broadcast that the NVVM lowering leaves unconverted.
static Value singleFragment(KernelBuilder &k, Value pair) {
  Type f16 = k.b.getF16Type();
  SmallVector<Value> halves;
  for (int64_t i = 0; i < 2; ++i)
    halves.push_back(
        LLVM::ExtractElementOp::create(k.b, k.loc, pair, k.i32(int32_t(i))));
  return vector::FromElementsOp::create(k.b, k.loc,
                                        VectorType::get({1, 2}, f16), halves);
}

/// `body` applied to `accs` behind a branch on `condition`, which the
/// caller knows to hold (the else branch passes `accs` on): ptxas hoists no
/// global load above a branch, so the loads of `body` do not hold
/// registers during the products before it.
static SmallVector<Value>
behindBranch(KernelBuilder &k, Value condition, ValueRange accs,
             function_ref<SmallVector<Value>(ValueRange)> body) {
  auto ifOp = scf::IfOp::create(k.b, k.loc, accs.getTypes(), condition, true);
  OpBuilder::InsertionGuard guard(k.b);
  k.b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(k.b, k.loc, accs);
  k.b.setInsertionPointToStart(ifOp.thenBlock());
  scf::YieldOp::create(k.b, k.loc, body(accs));
  return SmallVector<Value>(ifOp.getResults());
}

/// How many blocks of `size` tokens from `base` (at most `start`) cover
/// the `count` tokens of the split [start, end): none when it is empty.
static Value coveringBlocks(KernelBuilder &k, Value count, Value end,
                            Value base, int64_t size) {
  return arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::eq, count, k.index(0)),
      k.index(0),
      arith::CeilDivUIOp::create(k.b, k.loc, k.sub(end, base), k.index(size)));
}

/// The `edge`-th block outside the interior range [inner, innerEnd):
/// those before it, then those from innerEnd on.
static Value edgeBlock(KernelBuilder &k, Value edge, Value inner,
                       Value innerEnd) {
  return arith::SelectOp::create(k.b, k.loc,
                                 k.cmp(arith::CmpIPredicate::ult, edge, inner),
                                 edge, k.add(k.sub(edge, inner), innerEnd));
}

/// Of the `blocks` blocks of `size` tokens from `base` (a multiple of
/// `size`, at most `start`) that cover the split [start, end), the range
/// [inner, innerEnd) of those wholly in it and below `compressed` (in
/// pages); the others are at most the first, the last and the residual
/// buffer's.
static std::pair<Value, Value> interiorRange(KernelBuilder &k, Value start,
                                             Value end, Value compressed,
                                             Value base, Value blocks,
                                             int64_t size) {
  Value inner =
      k.minU(arith::SelectOp::create(
                 k.b, k.loc, k.cmp(arith::CmpIPredicate::ne, start, base),
                 k.index(1), k.index(0)),
             blocks);
  Value pagedEnd = k.minU(end, compressed);
  Value whole = arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::ugt, pagedEnd, base),
      k.div(k.sub(pagedEnd, base), size), k.index(0));
  return {inner, k.minU(k.maxU(inner, whole), blocks)};
}

/// Channels `span` of local token `local` of the split ([start, start +
/// count)) as fp16 pairs, zeros past `count` (so that tiles past the
/// split's end add nothing). With `direct`, the reader's own fp16-pair
/// dequantization (SequenceSideView::halfPairs, pairs in its
/// halfPairOrder); otherwise the reader's f32 values rounded in pairs
/// (channels 2i, 2i + 1 in pair i; the reader must unroll the span).
static SmallVector<Value> readHalfPairs(KernelBuilder &k,
                                        const SequenceSideView &view,
                                        Value kvHead, Value start, Value local,
                                        Value count, ChannelSpan span,
                                        bool direct = false) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  SmallVector<Value> none(span.count / 2,
                          zeros(k, VectorType::get({2}, b.getF16Type())));
  auto ifOp =
      scf::IfOp::create(b, loc, TypeRange(ValueRange(none)),
                        k.cmp(arith::CmpIPredicate::ult, local, count), true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  Value token = k.add(start, local);
  scf::YieldOp::create(
      b, loc,
      direct ? view.halfPairs(b, loc, kvHead, token, span)
             : view.foldChannels(
                   b, loc, kvHead, token, span, none,
                   [&](Value, std::optional<int64_t> offset,
                       ArrayRef<Value> values,
                       ValueRange pairs) -> SmallVector<Value> {
                     // The span is unrolled (setMaxUnrolledSpan): offsets
                     // are static, and chunks hold an even number of
                     // channels.
                     SmallVector<Value> next(pairs);
                     for (size_t i = 0; i + 1 < values.size(); i += 2)
                       next[(*offset + int64_t(i)) / 2] =
                           packHalfPair(k, values[i], values[i + 1]);
                     return next;
                   }));
  b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(b, loc, none);
  return SmallVector<Value>(ifOp.getResults());
}

double mlir::kvc::tensorCoreQueryScale(const PageReader &keys) {
  return keys.readsTokenPairs() ? 1.0 / 16 : 1.0;
}

/// The B fragments of the tensor-core key pass (emitTensorCoreScores) into
/// `fragments` (workgroup memref<D/16 x 32 x 2 x vector<2xf16>>, the two
/// registers of each lane): for k-step s and lane (g, t), query head g of
/// the group (zeros past it) at channels t*D/4 + 4s .. + 3, times
/// `queryScale`, rounded to fp16.
void mlir::kvc::emitQueryFragments(KernelBuilder &k,
                                   const SplitKernelSpec &spec, Value query,
                                   Value batch, Value firstQueryHead,
                                   Value fragments, double queryScale) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  const int64_t group = spec.queryHeads / spec.kvHeads, d = spec.headDim;
  const int64_t steps = d / 16;
  k.loop(k.threadId(), k.index(steps * 32), k.index(spec.blockThreads), {},
         [&](Value i, ValueRange) -> SmallVector<Value> {
           Value step = k.div(i, 32), lane = k.rem(i, 32);
           Value row = k.div(lane, 4);
           Value first = k.add(k.mul(k.rem(lane, 4), d / 4), k.mul(step, 4));
           Value inGroup =
               k.cmp(arith::CmpIPredicate::ult, row, k.index(group));
           Value head = k.add(firstQueryHead, k.minU(row, k.index(group - 1)));
           SmallVector<Value> values;
           for (int64_t j = 0; j < 4; ++j) {
             Value q =
                 loadAsF32(b, loc, query,
                           {batch, head, k.index(0), k.add(first, k.index(j))});
             if (queryScale != 1.0)
               q = k.fmul(q, k.f32(queryScale));
             values.push_back(
                 arith::SelectOp::create(b, loc, inGroup, q, k.f32(0.0)));
           }
           for (int64_t h = 0; h < 2; ++h)
             memref::StoreOp::create(
                 b, loc, packHalfPair(k, values[2 * h], values[2 * h + 1]),
                 fragments, ValueRange{step, lane, k.index(h)});
           return {};
         });
}

/// Channels of a lane's slab that emitTokenPairScores reads at once: 32
/// fp16-pair registers (both tiles' rows). No sm_80 or sm_90a site spills;
/// 8 took one more locate and 34 more SASS instructions a unit.
constexpr int64_t kTokenPairPart = 16;

/// The two registers of the queries' B fragment of k-step `step` for
/// `lane` (emitQueryFragments).
static SmallVector<Value> queryRegisters(KernelBuilder &k, Value queryFragments,
                                         int64_t step, Value lane) {
  SmallVector<Value> registers;
  for (int64_t r = 0; r < 2; ++r)
    registers.push_back(memref::LoadOp::create(
        k.b, k.loc, queryFragments, ValueRange{k.index(step), lane, k.index(r)}));
  return registers;
}

/// The queries' B fragment of k-step `step` for `lane`.
static Value queryFragment(KernelBuilder &k, Value queryFragments,
                           int64_t step, Value lane) {
  return fragment(k, queryRegisters(k, queryFragments, step, lane));
}

/// emitTensorCoreScores for keys read in token pairs (channel-axis 2-, 4-
/// and 8-bit codes: PageReader::compressedTokenPairTerms, two tokens of a
/// channel pair in A's layout). A warp takes a 32-token unit, two m16n8k16
/// row tiles: rows g and g + 8 of tile m are lane group g's token pair, so
/// a lane reads each channel of its slab for both tiles in one 8-byte
/// load, and each k-step's query fragment serves both.
///
/// The keys are not dequantized: a unit lies in one group of each channel,
/// so q . k = sum_c (q_c * scale_c) * code_c + sum_c q_c * zero_c. A holds
/// the codes' values (exact), B the query fragment times the lane's
/// channels' scales (one HMUL2 a register: a B register holds the channel
/// pair an A register does), and one more mma a k-step sums the zeros:
/// A's rows g + 8 the lane's zero pairs (rows g its scale pairs, as the
/// parameter load leaves them; unused), B the queries, rows g + 8's sums
/// added to both tiles' at the end. Per k-step that is two HMUL2 and an
/// HMMA instead of eight HFMA2. The queries carry 1/16
/// (tensorCoreQueryScale) so that fp16(q * scale) stays finite. Units in
/// the residual buffer multiply their fp16 rows by the queries. (The
/// oracle of this arithmetic: kvc/Numerics/FoldedKeys.h.) Units are
/// aligned to 32 tokens of the
/// sequence (as packing units and groups are) from the one holding
/// `start`; their rows outside [start, start + count) are read (pages or
/// residual rows of the same unit) and not stored. The units wholly in the
/// split and in pages take a loop of their own, without the residual
/// branch and the token bounds.
static void emitTokenPairScores(KernelBuilder &k, const SplitKernelSpec &spec,
                                const SequenceSideView &keys, Value kvHead,
                                Value start, Value count, Value queryFragments,
                                Value scores,
                                function_ref<Value(Value)> finishScore) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  const int64_t group = spec.queryHeads / spec.kvHeads, d = spec.headDim;
  const int64_t slab = d / 4, part = std::min(slab, kTokenPairPart);
  const int64_t warps = spec.blockThreads / 32;
  const PageReader &reader = *keys.reader;
  Type f32 = b.getF32Type();
  auto accType = VectorType::get({2, 2}, f32);

  Value tid = k.threadId();
  Value warp = k.div(tid, 32), lane = k.rem(tid, 32);
  Value pairLane = k.div(lane, 4), quad = k.rem(lane, 4);
  Value slabFirst = k.mul(quad, slab);
  Value firsts[2] = {reader.tokenPairFirst(b, loc, pairLane, 0),
                     reader.tokenPairFirst(b, loc, pairLane, 1)};
  Value base = k.sub(start, k.rem(start, 32)), end = k.add(start, count);
  Value units = coveringBlocks(k, count, end, base, 32);
  // Units [inner, innerEnd) lie wholly in the split and in pages: their
  // loop has no residual branch (whose merge cost a move per fragment
  // register) and no token bounds. The others (at most the first, the last
  // and the residual buffer's) take the general body.
  auto [inner, innerEnd] =
      interiorRange(k, start, end, keys.compressed, base, units, 32);

  auto scoreUnit = [&](Value unitToken, bool interior) {
    auto partSpan = [&](int64_t p) {
      return ChannelSpan{k.add(slabFirst, k.index(p * part)), part};
    };
    // A 4-register A fragment of tile m, k-step s, from pairs in
    // compressedTokenPairs' layout: channels 4s .. 4s + 3 of the part, rows
    // g and g + 8.
    auto tileFragment = [&](ArrayRef<Value> pairs, int64_t m, int64_t s) {
      auto at = [&](int64_t row, int64_t j) {
        return pairs[(2 * m + row) * (part / 2) + j];
      };
      return fragment(k, {at(0, 2 * s), at(1, 2 * s), at(0, 2 * s + 1),
                          at(1, 2 * s + 1)});
    };
    // Part p's products (16 channels of the slab) of a unit in pages added
    // to `in`: the two tiles' and the zeros' sums.
    auto foldedProducts = [&](int64_t p, ValueRange in) -> SmallVector<Value> {
      SmallVector<Value> accs(in);
      TokenPairTerms terms = keys.tokenPairTermsInPages(b, loc, kvHead,
                                                        unitToken, pairLane,
                                                        partSpan(p));
      for (int64_t s = 0; s < part / 4; ++s) {
        const int64_t step = p * (part / 4) + s;
        // Registers 0 and 1 hold channel pairs 2s and 2s + 1 of the part.
        SmallVector<Value> q = queryRegisters(k, queryFragments, step, lane);
        Value scaled = fragment(
            k, {arith::MulFOp::create(b, loc, q[0], terms.scales[2 * s]),
                arith::MulFOp::create(b, loc, q[1], terms.scales[2 * s + 1])});
        for (int64_t m = 0; m < 2; ++m)
          accs[m] = nvgpu::MmaSyncOp::create(
              b, loc, tileFragment(terms.codes, m, s), scaled, accs[m],
              ArrayRef<int64_t>{16, 8, 16});
        // Rows g + 8 the zeros, rows g the scales: the registers as the
        // 16-byte parameter load left them (no moves); rows g's sums are
        // not used.
        accs[2] = nvgpu::MmaSyncOp::create(
            b, loc,
            fragment(k, {terms.scales[2 * s], terms.zeros[2 * s],
                         terms.scales[2 * s + 1], terms.zeros[2 * s + 1]}),
            fragment(k, q), accs[2], ArrayRef<int64_t>{16, 8, 16});
      }
      return accs;
    };
    // The same of a unit in the residual buffer: its fp16 rows times the
    // queries (no zeros).
    auto residualProducts = [&](int64_t p,
                                ValueRange in) -> SmallVector<Value> {
      SmallVector<Value> accs(in);
      SmallVector<Value> pairs = keys.residualTokenPairs(
          b, loc, kvHead, unitToken, pairLane, partSpan(p));
      for (int64_t s = 0; s < part / 4; ++s) {
        Value q = queryFragment(k, queryFragments, p * (part / 4) + s, lane);
        for (int64_t m = 0; m < 2; ++m)
          accs[m] = nvgpu::MmaSyncOp::create(b, loc, tileFragment(pairs, m, s),
                                             q, accs[m],
                                             ArrayRef<int64_t>{16, 8, 16});
      }
      return accs;
    };
    // Edge units take either behind a branch, which merges only the sums.
    auto partProducts = [&](int64_t p, ValueRange in) -> SmallVector<Value> {
      if (interior)
        return foldedProducts(p, in);
      auto ifOp = scf::IfOp::create(
          b, loc, in.getTypes(),
          k.cmp(arith::CmpIPredicate::ult, unitToken, keys.compressed), true);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      scf::YieldOp::create(b, loc, foldedProducts(p, in));
      b.setInsertionPointToStart(ifOp.elseBlock());
      scf::YieldOp::create(b, loc, residualProducts(p, in));
      return SmallVector<Value>(ifOp.getResults());
    };
    SmallVector<Value> accs = {zeros(k, accType), zeros(k, accType),
                               zeros(k, accType)};
    for (int64_t p = 0; p < slab / part; ++p) {
      // In the interior, a part after the first sits behind a branch on
      // the unit being in pages (always taken there), so its loads do not
      // hold registers during the previous part's products. Without it the
      // loop peaked at 93 live registers (2-bit keys at head_dim 128,
      // sm_90a) and 16 of the 85 test sites spilled under the 96-register
      // cap with both passes on tensor cores; with it, 86 and none.
      if (interior && p > 0)
        accs = behindBranch(
            k, k.cmp(arith::CmpIPredicate::ult, unitToken, keys.compressed),
            accs, [&](ValueRange in) { return partProducts(p, in); });
      else
        accs = partProducts(p, accs);
    }
    // C: rows g and g + 8 of tile m are the pair's tokens, columns 2t and
    // 2t + 1 query heads.
    for (int64_t m = 0; m < 2; ++m)
      for (int64_t row = 0; row < 2; ++row)
        for (int64_t h = 0; h < 2; ++h) {
          Value token = k.add(k.add(unitToken, firsts[m]),
                              k.index(row * reader.tokenPairStride()));
          Value head = k.add(k.mul(quad, 2), k.index(h));
          Value store = k.cmp(arith::CmpIPredicate::ult, head, k.index(group));
          if (!interior)
            store = arith::AndIOp::create(
                b, loc, store,
                arith::AndIOp::create(
                    b, loc, k.cmp(arith::CmpIPredicate::uge, token, start),
                    k.cmp(arith::CmpIPredicate::ult, token, end)));
          // The zeros' sums are in rows g + 8 (rows g summed the scales).
          Value product = vector::ExtractOp::create(b, loc, accs[m],
                                                    ArrayRef<int64_t>{row, h});
          Value zeroSum = vector::ExtractOp::create(b, loc, accs[2],
                                                    ArrayRef<int64_t>{1, h});
          Value dot = k.fadd(product, zeroSum);
          k.ifThen(store, [&] {
            memref::StoreOp::create(b, loc, finishScore(dot), scores,
                                    ValueRange{head, k.sub(token, start)});
          });
        }
  };

  // Warp-uniform loops over the units (mma.sync needs the whole warp),
  // the edges first: the residual buffer's pointer is then dead in the
  // interior loop, which needs the most registers.
  Value edges = k.add(inner, k.sub(units, innerEnd));
  k.loop(warp, edges, k.index(warps), {},
         [&](Value edge, ValueRange) -> SmallVector<Value> {
           Value unit = edgeBlock(k, edge, inner, innerEnd);
           scoreUnit(k.add(base, k.mul(unit, 32)), /*interior=*/false);
           return {};
         });
  // Over the interior units' first tokens.
  k.loop(k.add(base, k.mul(k.add(inner, warp), 32)),
         k.add(base, k.mul(innerEnd, 32)), k.index(32 * warps), {},
         [&](Value unitToken, ValueRange) -> SmallVector<Value> {
           scoreUnit(unitToken, /*interior=*/true);
           return {};
         });
}

/// Step 2 on tensor cores: scores[j][t] = q_j . k_t for a warp's tiles of
/// 16 tokens with mma.sync.m16n8k16 (f16 inputs, f32 accumulation). The
/// tile's tokens are the rows of A, the query heads (zero-padded to 8) the
/// columns of B, channels the reduction. Lane (g, t) = (lane / 4, lane % 4)
/// holds A's rows g and g + 8 and B's column g, and in each k-step the
/// reduction indices {2t, 2t+1, 2t+8, 2t+9} (PTX ISA fragment layouts);
/// since a dot product may sum its channels in any order, those indices
/// stand for channels 4s .. 4s+3 of the lane's slab [t*D/4, (t+1)*D/4) in
/// k-step s, for A and B alike. So a lane reads one contiguous slab of each
/// of its two tokens with PageReader's loads, 16 channels (4 k-steps) at a
/// time (2-bit token-axis codes: a 4-byte word and a (scale, zero) pair),
/// dequantizes it exactly as the CPU loops do, and rounds it to fp16 pairs:
/// the A fragments of those k-steps. The queries' B fragments come from
/// shared memory (emitQueryFragments), two 4-byte loads a k-step: held in
/// registers for the whole pass they made ptxas spill. Tokens past `count`
/// are zero rows whose scores are not stored. Channel-axis 2-, 4- and 8-bit
/// keys are read in token pairs instead (emitTokenPairScores).
void mlir::kvc::emitTensorCoreScores(KernelBuilder &k,
                                     const SplitKernelSpec &spec,
                                     const SequenceSideView &keys, Value kvHead,
                                     Value start, Value count,
                                     Value queryFragments, Value scores,
                                     function_ref<Value(Value)> finishScore) {
  if (keys.reader->readsTokenPairs())
    return emitTokenPairScores(k, spec, keys, kvHead, start, count,
                               queryFragments, scores, finishScore);
  OpBuilder &b = k.b;
  Location loc = k.loc;
  const int64_t group = spec.queryHeads / spec.kvHeads, d = spec.headDim;
  const int64_t slab = d / 4, steps = d / 16;
  const int64_t warps = spec.blockThreads / 32;
  Type f32 = b.getF32Type();

  Value tid = k.threadId();
  Value warp = k.div(tid, 32), lane = k.rem(tid, 32);
  Value row = k.div(lane, 4), quad = k.rem(lane, 4);
  Value slabFirst = k.mul(quad, slab);

  // A slab is read a part (16 channels, 4 k-steps) at a time: whole
  // slabs of both tokens (32 registers at head_dim 128) made ptxas spill.
  const int64_t partChannels = std::min<int64_t>(slab, 16);
  auto readSlab = [&](Value local, int64_t part) {
    return readHalfPairs(
        k, keys, kvHead, start, local, count,
        ChannelSpan{k.add(slabFirst, k.index(part * partChannels)),
                    partChannels});
  };

  // Warp-uniform loop over the split's tiles: mma.sync needs the whole
  // warp.
  Value tiles = arith::CeilDivUIOp::create(b, loc, count, k.index(16));
  k.loop(
      warp, tiles, k.index(warps), {},
      [&](Value tile, ValueRange) -> SmallVector<Value> {
        Value top = k.add(k.mul(tile, 16), row);
        Value bottom = k.add(top, k.index(8));
        auto accType = VectorType::get({2, 2}, f32);
        Value acc = arith::ConstantOp::create(
            b, loc, accType,
            DenseElementsAttr::get(accType, b.getF32FloatAttr(0.0)));
        SmallVector<Value> upper, lower;
        for (int64_t s = 0; s < steps; ++s) {
          int64_t inPart = s % (partChannels / 4);
          if (inPart == 0) {
            upper = readSlab(top, s / (partChannels / 4));
            lower = readSlab(bottom, s / (partChannels / 4));
          }
          Value a = fragment(k, {upper[2 * inPart], lower[2 * inPart],
                                 upper[2 * inPart + 1], lower[2 * inPart + 1]});
          Value q = queryFragment(k, queryFragments, s, lane);
          acc = nvgpu::MmaSyncOp::create(b, loc, a, q, acc,
                                         ArrayRef<int64_t>{16, 8, 16});
        }
        // C: rows g and g + 8, columns (query heads) 2t and 2t + 1.
        Value tokens[] = {top, bottom};
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t h = 0; h < 2; ++h) {
            Value local = tokens[i];
            Value head = k.add(k.mul(quad, 2), k.index(h));
            Value store = arith::AndIOp::create(
                b, loc, k.cmp(arith::CmpIPredicate::ult, head, k.index(group)),
                k.cmp(arith::CmpIPredicate::ult, local, count));
            Value dot =
                vector::ExtractOp::create(b, loc, acc, ArrayRef<int64_t>{i, h});
            k.ifThen(store, [&] {
              memref::StoreOp::create(b, loc, finishScore(dot), scores,
                                      ValueRange{head, local});
            });
          }
        return {};
      });
}

/// The value pass on tensor cores. The weighted sum out[c][j] = sum over
/// tokens of value[token][c] * weight[j][token] is C = A B with A = values
/// transposed (16 channels x tokens), B = weights (tokens x the query
/// heads, zero-padded to 8), tokens the reduction. A warp takes tiles of 8
/// tokens (warp, warp + warps, ...) and all D channels: D / 16 mma tiles,
/// whose accumulators (D / 8 f32 a lane) it keeps for the whole split.
/// Lane (g, t) takes tokens 2t and 2t + 1 of a tile (four tokens a lane in
/// one m16n8k16 over 16-token tiles made ptxas spill 24 bytes at head_dim
/// 128).
///
/// C's rows may stand for any channels, so lane (g, t)'s rows g and g + 8
/// of channel tile j stand for channels g*D/8 + 2j and g*D/8 + 2j + 1:
/// lane group g owns the slab [g*D/8, (g+1)*D/8), which it reads with an
/// unrolled PageReader span of each of its two tokens (2-bit token-axis
/// codes at head_dim 128: a 4-byte word and a (scale, zero) pair). For the
/// fp16-pair layouts, the 16-token blocks wholly in the split and in pages
/// take a loop of their own, two tiles an iteration: the block's four
/// tokens a lane share one locate, and there is no residual branch and no
/// bound on the weights. The read yields channel pairs of one token; an A
/// register pairs one channel of the two tokens, one vector.shuffle.
///
/// Weights are in [0, 1]; rounded to fp16 they would lose 11 bits, so they
/// are split into hi = fp16(w) and lo = fp16(w - hi) (about 22 bits). With
/// up to 4 query heads a KV head (Llama-3's 4) they take B's columns: hi in
/// 0..3, lo in 4..7, one m16n8k8 a channel tile (A the lane's values once,
/// B one register), and at the end lanes t and t + 2 add their sums with
/// one shuffle. With more, they fill m16n8k16's two reduction halves: B
/// holds hi at indices 2t, 2t + 1 and lo at 2t + 8, 2t + 9, A the lane's
/// values at both (a register move each). Either way the values' fp16
/// rounding is the one rounding the CPU loops model (value-reads=f16). The
/// warps' sums meet in shared memory, and each (query head, channel) total
/// goes to `store` once.
void mlir::kvc::emitTensorCoreValues(
    KernelBuilder &k, const SplitKernelSpec &spec,
    const SequenceSideView &values, Value kvHead, Value start, Value count,
    Value weights, Value partials,
    function_ref<void(Value, Value, Value)> store) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  const int64_t group = spec.queryHeads / spec.kvHeads, d = spec.headDim;
  const int64_t slab = d / 8, channelTiles = d / 16;
  // Channel-axis values take a code word per channel and four channels'
  // (scale, zero) pairs a load: a whole 16-channel slab of both tokens
  // made ptxas spill (4 bytes with the tensor-core key pass), half of one
  // does not.
  const int64_t part =
      spec.encoding.value.isChannelAxis() ? std::min<int64_t>(slab, 8) : slab;
  // Token-axis 2-, 4- and 8-bit codes are dequantized straight into fp16
  // pairs (one fma a pair), in the order of their bits: pair j of a slab
  // holds channels order[j] of it, and so do rows g and g + 8 of channel
  // tile j. Other layouts: channels 2j and 2j + 1.
  const bool direct = values.reader->readsHalfPairs();
  SmallVector<std::pair<int64_t, int64_t>> order;
  if (direct)
    order = values.reader->halfPairOrder(slab);
  else
    for (int64_t j = 0; j < channelTiles; ++j)
      order.push_back({2 * j, 2 * j + 1});
  const int64_t warps = spec.blockThreads / 32;
  Type f16 = b.getF16Type(), f32 = b.getF32Type();
  auto accType = VectorType::get({2, 2}, f32);

  Value tid = k.threadId();
  Value warp = k.div(tid, 32), lane = k.rem(tid, 32);
  Value row = k.div(lane, 4), quad = k.rem(lane, 4);
  Value slabFirst = k.mul(row, slab);
  // Up to 4 query heads a KV head, B's columns take the weights' hi parts
  // (columns 0..3) and lo parts (4..7), and m16n8k8 tiles of 8 tokens sum
  // v * hi and v * lo apart: A holds each value once. Otherwise B's column
  // g is query head g of the group, and m16n8k16 takes hi and lo in its
  // two reduction halves, A each value twice. Past the group, zeros.
  const bool splitColumns = group <= 4;
  Value head = splitColumns ? k.rem(row, 4) : row;
  Value inGroup = k.cmp(arith::CmpIPredicate::ult, head, k.index(group));
  Value weightRow = k.minU(head, k.index(group - 1));
  Value loColumn = k.cmp(arith::CmpIPredicate::uge, row, k.index(4));

  // Tiles of 8 tokens, for fp16-pair layouts aligned to the sequence from
  // the one holding `start`: a lane's two tokens 2t and 2t + 1 lie in one
  // page, so in a tile wholly in the split and in pages they are located
  // once. (Other layouts: from `start`; aligned, one spilled.)
  Value base = direct ? k.sub(start, k.rem(start, 8)) : start;
  Value end = k.add(start, count);
  Value tiles = coveringBlocks(k, count, end, base, 8);
  SmallVector<Value> inits(channelTiles, zeros(k, accType));
  // The products of `tiles` consecutive tiles from `tileToken` added to
  // `accs`. Interior tiles (fp16-pair layouts: wholly in the split and in
  // pages) come two at a time, 16 tokens of one page located once; their
  // weights need no bounds and their reads no branch.
  auto tileBody = [&](Value tileToken, ValueRange accs, bool interior,
                      int64_t tiles) -> SmallVector<Value> {
    // The lane's tokens (reduction indices 2t and 2t + 1 of each tile) as
    // offsets from `tileToken` and in the split (tokens before `start`
    // wrap around: like those past the end, not below `count`).
    SmallVector<Value> offsets, locals;
    for (int64_t h = 0; h < tiles; ++h)
      for (int64_t i = 0; i < 2; ++i) {
        offsets.push_back(k.add(k.mul(quad, 2), k.index(8 * h + i)));
        locals.push_back(k.sub(k.add(tileToken, offsets.back()), start));
      }
    // Their weights (zeros outside the split and past the group) as fp16
    // hi and lo parts.
    auto weightFragment = [&](int64_t h) {
      Value w[2];
      for (int64_t i = 0; i < 2; ++i) {
        Value local = locals[2 * h + i], valid = inGroup, at = local;
        if (!interior) {
          Value inSplit = k.cmp(arith::CmpIPredicate::ult, local, count);
          at = arith::SelectOp::create(b, loc, inSplit, local, k.index(0));
          valid = arith::AndIOp::create(b, loc, inGroup, inSplit);
        }
        Value weight =
            memref::LoadOp::create(b, loc, weights, ValueRange{weightRow, at});
        w[i] = arith::SelectOp::create(b, loc, valid, weight, k.f32(0.0));
      }
      Value high = packHalfPair(k, w[0], w[1]);
      Value rest = arith::SubFOp::create(
          b, loc,
          vector::FromElementsOp::create(b, loc, VectorType::get({2}, f32),
                                         ValueRange{w[0], w[1]}),
          arith::ExtFOp::create(b, loc, VectorType::get({2}, f32), high));
      Value low =
          arith::TruncFOp::create(b, loc, VectorType::get({2}, f16), rest);
      // B: the hi parts at reduction indices 2t, 2t + 1, the lo parts at
      // 2t + 8, 2t + 9 (or in columns 4..7), ...
      return splitColumns ? singleFragment(k, arith::SelectOp::create(
                                                  b, loc, loColumn, low, high))
                          : fragment(k, {high, low});
    };

    // An interior block's page, located once for its tiles.
    std::pair<Value, Value> located;
    if (interior)
      located = values.locate(b, loc, kvHead, tileToken);
    // Tile h's products added to `in`.
    auto tileProducts = [&](int64_t h, ValueRange in) -> SmallVector<Value> {
      SmallVector<Value> next(in);
      Value bWeights = weightFragment(h);
      ArrayRef<Value> tileOffsets = ArrayRef<Value>(offsets).slice(2 * h, 2);
      ArrayRef<Value> tileLocals = ArrayRef<Value>(locals).slice(2 * h, 2);
      SmallVector<Value> read;
      for (int64_t j = 0; j < channelTiles; ++j) {
        // Each part of the slab: both tokens read. Interior tiles are
        // located once; the others (never wholly in the split and in
        // pages) read each token on its own.
        if (j % (part / 2) == 0) {
          ChannelSpan span{k.add(slabFirst, k.index(2 * j)), part};
          if (interior) {
            read = values.halfPairColumnsInPage(
                b, loc, located.first, located.second, tileOffsets[0],
                tileOffsets[1], span);
          } else {
            read.clear();
            for (Value local : tileLocals)
              llvm::append_range(read,
                                 readHalfPairs(k, values, kvHead, start, local,
                                               count, span, direct));
          }
        }
        const int64_t at = j % (part / 2);
        // ... and A the values (m16n8k8), or the same values at both halves
        // (m16n8k16 sums v * hi + v * lo). Rows g and g + 8: one channel of
        // both tokens each (interior tiles read them so; the others pair
        // the tokens' channel pairs).
        Value upper, lower;
        if (interior) {
          upper = read[2 * at];
          lower = read[2 * at + 1];
        } else {
          upper = vector::ShuffleOp::create(b, loc, read[at],
                                            read[part / 2 + at],
                                            ArrayRef<int64_t>{0, 2});
          lower = vector::ShuffleOp::create(b, loc, read[at],
                                            read[part / 2 + at],
                                            ArrayRef<int64_t>{1, 3});
        }
        if (splitColumns)
          next[j] = nvgpu::MmaSyncOp::create(
              b, loc, fragment(k, {upper, lower}), bWeights, next[j],
              ArrayRef<int64_t>{16, 8, 8});
        else
          next[j] = nvgpu::MmaSyncOp::create(
              b, loc, fragment(k, {upper, lower, upper, lower}), bWeights,
              next[j], ArrayRef<int64_t>{16, 8, 16});
      }
      return next;
    };
    SmallVector<Value> next(accs);
    for (int64_t h = 0; h < tiles; ++h) {
      // The second interior tile sits behind a branch on its block being
      // in pages (always taken), so its reads wait for the first tile's
      // products instead of holding registers (the K4/V4 g128 bench kernel
      // spilled without it).
      if (h > 0)
        next = behindBranch(
            k, k.cmp(arith::CmpIPredicate::ult, tileToken, values.compressed),
            next, [&](ValueRange in) { return tileProducts(h, in); });
      else
        next = tileProducts(h, next);
    }
    return next;
  };

  // Warp-uniform loops over the split's tiles (mma.sync needs the whole
  // warp). For fp16-pair layouts, the 16-token blocks [inner, innerEnd)
  // (aligned to the sequence) lie wholly in the split and in pages and
  // take a loop of their own, two tiles an iteration; the other tiles (at
  // most two at either end of the split, and the residual buffer's) the
  // general body.
  Value edgeFirst = k.index(0), edgeRest = k.index(0);
  scf::ForOp innerLoop;
  if (direct) {
    Value blockBase = k.sub(start, k.rem(start, 16));
    Value blocks = coveringBlocks(k, count, end, blockBase, 16);
    auto [inner, innerEnd] =
        interiorRange(k, start, end, values.compressed, blockBase, blocks, 16);
    // The interior loop first: what the edge loop needs (its tile range)
    // then passes the interior loop, whose registers are fewer (kept
    // across the edge loop, ptxas spilled it at GQA 7).
    innerLoop = k.loop(k.add(inner, warp), innerEnd, k.index(warps), inits,
                       [&](Value block, ValueRange accs) {
                         return tileBody(k.add(blockBase, k.mul(block, 16)),
                                         accs, /*interior=*/true, 2);
                       });
    // The tiles before and after the interior blocks.
    auto tileOf = [&](Value block) {
      return k.minU(k.div(k.sub(k.add(blockBase, k.mul(block, 16)), base), 8),
                    tiles);
    };
    edgeFirst = tileOf(inner);
    edgeRest = tileOf(innerEnd);
  }
  Value edges = k.add(edgeFirst, k.sub(tiles, edgeRest));
  scf::ForOp tileLoop =
      k.loop(warp, edges, k.index(warps),
             innerLoop ? ValueRange(innerLoop.getResults()) : ValueRange(inits),
             [&](Value edge, ValueRange accs) -> SmallVector<Value> {
               Value tile = edgeBlock(k, edge, edgeFirst, edgeRest);
               return tileBody(k.add(base, k.mul(tile, 8)), accs,
                               /*interior=*/false, 1);
             });

  // C: rows g and g + 8 of tile j are channels slabFirst + order[j],
  // columns 2t and 2t + 1 query heads (with split columns, lanes t = 2, 3
  // hold the lo parts' sums of the heads of lanes t - 2: added to those by
  // one shuffle).
  for (int64_t j = 0; j < channelTiles; ++j)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t h = 0; h < 2; ++h) {
        Value head = k.add(k.mul(quad, 2), k.index(h));
        Value channel =
            k.add(slabFirst, k.index(i ? order[j].second : order[j].first));
        Value sum = vector::ExtractOp::create(b, loc, tileLoop.getResult(j),
                                              ArrayRef<int64_t>{i, h});
        if (splitColumns)
          sum = k.fadd(sum,
                       gpu::ShuffleOp::create(b, loc, sum, k.i32(2), k.i32(32),
                                              gpu::ShuffleMode::XOR)
                           .getShuffleResult());
        k.ifThen(k.cmp(arith::CmpIPredicate::ult, head, k.index(group)), [&] {
          memref::StoreOp::create(b, loc, sum, partials,
                                  ValueRange{warp, head, channel});
        });
      }
  k.barrier();
  k.loop(tid, k.index(group * d), k.index(spec.blockThreads), {},
         [&](Value i, ValueRange) -> SmallVector<Value> {
           Value head = k.div(i, d), channel = k.rem(i, d);
           Value total = memref::LoadOp::create(
               b, loc, partials, ValueRange{k.index(0), head, channel});
           for (int64_t w = 1; w < warps; ++w)
             total = k.fadd(total, memref::LoadOp::create(
                                       b, loc, partials,
                                       ValueRange{k.index(w), head, channel}));
           store(head, channel, total);
           return {};
         });
}

//===- TensorCoreKeys.cpp - The split kernel's key pass on tensor cores ----===//
//
// The split kernel's key pass (key-product=mma; the value pass is in
// TensorCoreValues.cpp) on tensor cores: nvgpu.mma.sync with shape m16n8k16,
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

#include "Staging.h"
#include "TensorCorePasses.h"
#include "TensorCoreSupport.h"

#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::kvc;
using namespace mlir::kvc::tensorcore;

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

double mlir::kvc::tensorCoreQueryScale(const PageReader &keys) {
  return keys.readsTokenPairs() ? keys.foldedQueryScale() : 1.0;
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
/// row tiles: rows g and g + 8 of tile m are lane group g's token pair
/// (tokens 4g + 2m and 4g + 2m + 1), so a lane reads each channel pair of
/// its slab for both tiles in one 4-byte load (8-bit: 8 bytes), and each
/// k-step's query fragment serves both.
///
/// The keys are not dequantized: a unit lies in one group of each channel,
/// so q . k = sum_c (q_c * scale_c) * code_c + sum_c q_c * zero_c. A holds
/// the codes' values (exact), B the query fragment times the lane's
/// channels' scales (one HMUL2 a register: a B register holds the channel
/// pair an A register does), and one more mma a k-step sums the zeros:
/// A's rows g + 8 the lane's zero pairs (rows g its scale pairs, as the
/// parameter load leaves them; unused), B the queries, rows g + 8's sums
/// added to both tiles' at the end. Per k-step that is two HMUL2 and an
/// HMMA instead of eight HFMA2. The codes are read as fp16 subnormals
/// (code * 2^(bit - 24), one LOP3 a pair and no HADD2: the tensor cores
/// take subnormal inputs and form fp16 products exactly); a row's codes
/// always sit at the same bit, so each row's sums are multiplied by
/// 2^(24 - bit) at the end, one FFMA with the zeros' sum. (mma-codes=normal
/// reads them as normals, the codes themselves, one HADD2 a pair more.) The
/// queries carry 2^(bits - 4) (tensorCoreQueryScale) so that fp16(q *
/// scale) stays finite and, down to small |q| * range, normal. Units in the
/// residual buffer multiply their fp16 rows by the queries. (The oracle of this
/// arithmetic: kvc/Numerics/FoldedScales.h.) Units are aligned to 32 tokens of
/// the sequence (as packing units and groups are) from the one holding `start`;
/// their rows outside [start, start + count) are read (pages or residual rows
/// of the same unit) and not stored. The units wholly in the split and in pages
/// take a loop of their own, without the residual branch and the token bounds.
static void emitTokenPairScores(KernelBuilder &k, const SplitKernelSpec &spec,
                                const SequenceSideView &keys, Value kvHead,
                                Value start, Value count, Value queryFragments,
                                Value keyStages, Value scores,
                                double scoreScale,
                                function_ref<Value(Value)> capScore) {
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
  // What a code unit weighs in tile m's rows g (0) and g + 8 (1).
  double codeWeights[2][2];
  for (int64_t m = 0; m < 2; ++m)
    for (int64_t row = 0; row < 2; ++row)
      codeWeights[m][row] = reader.tokenPairCodeWeight(m, row);
  Value base = k.sub(start, k.rem(start, 32)), end = k.add(start, count);
  Value units = coveringBlocks(k, count, end, base, 32);
  // Units [inner, innerEnd) lie wholly in the split and in pages: their
  // loop has no residual branch (whose merge cost a move per fragment
  // register) and no token bounds. The others (at most the first, the last
  // and the residual buffer's) take the general body.
  auto [inner, innerEnd] =
      interiorRange(k, start, end, keys.compressed, base, units, 32);

  // key-stages: each warp's next units copied ahead into its shared-memory
  // stages (Staging.h); the interior loop reads them from there.
  std::optional<ByteViews> staged;
  if (keyStages)
    staged = sharedBytes(k, keyStages);

  // `stageBase`: where in `staged` an interior unit's copy lies (none:
  // read from its page).
  auto scoreUnit = [&](Value unitToken, bool interior, Value stageBase) {
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
      TokenPairTerms terms =
          stageBase ? reader.stagedTokenPairTerms(b, loc, *staged, stageBase,
                                                  pairLane, partSpan(p),
                                                  reader.foldsSubnormalCodes())
                    : keys.tokenPairTermsInPages(b, loc, kvHead, unitToken,
                                                 pairLane, partSpan(p));
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
    // queries (no zeros), weighed as the pages' codes are.
    auto residualProducts = [&](int64_t p,
                                ValueRange in) -> SmallVector<Value> {
      SmallVector<Value> accs(in);
      SmallVector<Value> pairs = keys.residualTokenPairs(
          b, loc, kvHead, unitToken, pairLane, partSpan(p));
      SmallVector<Value> sums = {zeros(k, accType), zeros(k, accType)};
      for (int64_t s = 0; s < part / 4; ++s) {
        Value q = queryFragment(k, queryFragments, p * (part / 4) + s, lane);
        for (int64_t m = 0; m < 2; ++m)
          sums[m] = nvgpu::MmaSyncOp::create(b, loc, tileFragment(pairs, m, s),
                                             q, sums[m],
                                             ArrayRef<int64_t>{16, 8, 16});
      }
      for (int64_t m = 0; m < 2; ++m) {
        // C's element (row, h): row 0 is rows g, row 1 rows g + 8. Weights
        // of 1 (codes read as normals) need no multiply.
        SmallVector<float> weights;
        for (int64_t row = 0; row < 2; ++row)
          weights.append(2, float(codeWeights[m][row]));
        Value weighed = sums[m];
        if (llvm::any_of(weights, [](float w) { return w != 1.0f; })) {
          weighed = arith::MulFOp::create(
              b, loc, sums[m],
              arith::ConstantOp::create(
                  b, loc, accType,
                  DenseElementsAttr::get(accType, ArrayRef<float>(weights))));
        }
        accs[m] = arith::AddFOp::create(b, loc, accs[m], weighed);
      }
      return accs;
    };
    // Edge units take either behind a branch, which merges only the sums.
    auto partProducts = [&](int64_t p, ValueRange in) -> SmallVector<Value> {
      if (interior)
        return foldedProducts(p, in);
      return eitherBranch(
          k, k.cmp(arith::CmpIPredicate::ult, unitToken, keys.compressed), in,
          [&](ValueRange accs) { return foldedProducts(p, accs); },
          [&](ValueRange accs) { return residualProducts(p, accs); });
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
    // The zeros' sums of query heads 2t and 2t + 1 (rows g + 8; rows g
    // summed the scales), scaled as the scores.
    Value zeroSums[2];
    for (int64_t h = 0; h < 2; ++h)
      zeroSums[h] = k.fmul(
          vector::ExtractOp::create(b, loc, accs[2], ArrayRef<int64_t>{1, h}),
          k.f32(scoreScale));
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
          // Tile m's sums over the codes scaled back (exact; subnormal
          // reads) and as the scores, plus the zeros': one fma.
          Value product = vector::ExtractOp::create(b, loc, accs[m],
                                                    ArrayRef<int64_t>{row, h});
          Value score = LLVM::FMAOp::create(
              b, loc, product, k.f32(scoreScale / codeWeights[m][row]),
              zeroSums[h]);
          k.ifThen(store, [&] {
            memref::StoreOp::create(b, loc, capScore(score), scores,
                                    ValueRange{head, k.sub(token, start)});
          });
        }
  };

  // Warp-uniform loops over the units (mma.sync needs the whole warp),
  // the edges first: the residual buffer's pointer is then dead in the
  // interior loop, which needs the most registers.
  auto interiorFirst = [&] {
    return k.add(base, k.mul(k.add(inner, warp), 32));
  };
  auto interiorEnd = [&] { return k.add(base, k.mul(innerEnd, 32)); };
  Value step = k.index(32 * warps);
  std::optional<UnitStaging> staging;
  if (staged) {
    // Code and parameter segments meet at a multiple of 32 (head_dim 64 or
    // 128), so each copy instruction is of one kind for the whole warp.
    const int64_t codeSegments = reader.tokenPairUnitCodeBytes() / 16;
    assert(codeSegments % 32 == 0 && "codes end at a warp's multiple");
    SegmentSource source = [&, codeSegments](Value blockBase, Value slot,
                                             Value segment,
                                             int64_t firstSegment) {
      return reader.tokenPairUnitSegment(b, loc, blockBase, slot, segment,
                                         firstSegment < codeSegments);
    };
    // The first interior units' copies under way during the edges.
    staging.emplace(UnitStaging::start(k, keys, kvHead, *staged,
                                       /*regionBase=*/0, spec.keyStages,
                                       reader.tokenPairUnitBytes(), source,
                                       interiorFirst(), interiorEnd(), step));
  }
  Value edges = k.add(inner, k.sub(units, innerEnd));
  k.loop(warp, edges, k.index(warps), {},
         [&](Value edge, ValueRange) -> SmallVector<Value> {
           Value unit = edgeBlock(k, edge, inner, innerEnd);
           scoreUnit(k.add(base, k.mul(unit, 32)), /*interior=*/false, {});
           return {};
         });
  // Over the interior units' first tokens.
  if (!staging) {
    k.loop(interiorFirst(), interiorEnd(), step, {},
           [&](Value unitToken, ValueRange) -> SmallVector<Value> {
             scoreUnit(unitToken, /*interior=*/true, {});
             return {};
           });
    return;
  }
  // Carried: the stage.
  k.loop(staging->getFirst(), staging->getEnd(), step, {k.index(0)},
         [&](Value unitToken, ValueRange carried) -> SmallVector<Value> {
           Value stageIndex = carried[0];
           Value page = staging->pageAhead(unitToken);
           Value stageBase = staging->await(stageIndex);
           staging->copyAhead(unitToken, stageIndex, page);
           scoreUnit(unitToken, /*interior=*/true, stageBase);
           return {staging->nextStage(stageIndex)};
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
                                     Value queryFragments, Value keyStages,
                                     Value scores, double scoreScale,
                                     function_ref<Value(Value)> capScore) {
  if (keys.reader->readsTokenPairs())
    return emitTokenPairScores(k, spec, keys, kvHead, start, count,
                               queryFragments, keyStages, scores, scoreScale,
                               capScore);
  assert(!keyStages && "key-stages needs keys read in token pairs");
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
              memref::StoreOp::create(
                  b, loc, capScore(k.fmul(dot, k.f32(scoreScale))), scores,
                                      ValueRange{head, local});
            });
          }
        return {};
      });
}

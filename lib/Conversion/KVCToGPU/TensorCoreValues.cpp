//===- TensorCoreValues.cpp - The split kernel's value pass on tensor cores ===//
//
// value-product=mma: the weighted sum of values on tensor cores
// (nvgpu.mma.sync, fp16 A and B, f32 accumulators; fragment layouts as in
// TensorCoreKeys.cpp).
//
//===----------------------------------------------------------------------===//

#include "Staging.h"
#include "TensorCorePasses.h"
#include "TensorCoreSupport.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kvc;
using namespace mlir::kvc::tensorcore;

/// SequenceSideView::halfPairTerms of local token `local` of the split
/// ([start, start + count)), zeros (and scale and zero 0) past `count`.
static HalfPairTerms readHalfPairTerms(KernelBuilder &k,
                                       const SequenceSideView &view,
                                       Value kvHead, Value start, Value local,
                                       Value count, ChannelSpan span) {
  return HalfPairTerms::unflatten(
      readInSplit(k, local, count, span.count / 2 + 2, [&] {
        return view
            .halfPairTerms(k.b, k.loc, kvHead, k.add(start, local), span)
            .flatten();
      }));
}

/// prmt selectors taking the low (high) halves of two words: the hi (lo)
/// parts of two tokens' packed weights.
static constexpr int32_t kHighHalvesSelector = 0x5410;
static constexpr int32_t kLowHalvesSelector = 0x7632;

std::pair<Value, Value>
mlir::kvc::foldedValueTerms(KernelBuilder &k, const SequenceSideView &values,
                            Value kvHead, Value token, int64_t slab) {
  // The terms of a slab's read: its codes go unused (LLVM drops their
  // loads); residual rows come with scale 1 and zero 0.
  HalfPairTerms terms = values.halfPairTerms(k.b, k.loc, kvHead, token,
                                             ChannelSpan{k.index(0), slab});
  auto first = [&](Value pair) -> Value {
    return arith::ExtFOp::create(
        k.b, k.loc, k.b.getF32Type(),
        Value(vector::ExtractOp::create(k.b, k.loc, pair, int64_t(0))));
  };
  return {first(terms.scales), first(terms.zeros)};
}

double mlir::kvc::tensorCoreWeightScale(const SplitKernelSpec &spec) {
  const ::kvc::numerics::SideEncoding &values = spec.encoding.value;
  if (!softmaxSumsValueZeros(spec.valueProduct, values, spec.headDim))
    return 0x1p14;
  // w * scale * 2^b is about w times the token's range (the scale is
  // range / (2^b - 1)), an fp16 normal where w * scale alone, for small
  // scales, would not be.
  const double scale = std::ldexp(1.0, int(values.quant.bits));
  // mma-codes=normal, the reads for tensor cores that flush subnormal
  // inputs: 2^6 more, so that the lo parts of w * scale * 2^b * 2^6 stay
  // fp16 normals down to w * range of about 2^-9 (2^-3 without), while hi
  // stays finite for token ranges below 768 (49152 without).
  if (spec.foldedCodes == FoldedCodes::Normal)
    return scale * 0x1p6;
  return scale;
}

/// hi is w with its f32 mantissa cut to fp16's 10 bits, so that hi is
/// exact in fp16 (for |w| >= 2^-14) and w - hi exact in f32; lo = fp16(w -
/// hi) keeps about 21 bits more. (fp16(w) as hi would cost a conversion
/// and its widening back.)
Value mlir::kvc::packWeightHalves(KernelBuilder &k, Value weight) {
  Value mask = k.i32(int32_t(0xFFFFE000u));
  Value bits = arith::BitcastOp::create(k.b, k.loc, k.b.getI32Type(), weight);
  Value high =
      arith::BitcastOp::create(k.b, k.loc, weight.getType(),
                               arith::AndIOp::create(k.b, k.loc, bits, mask));
  Value rest = arith::SubFOp::create(k.b, k.loc, weight, high);
  return LLVM::BitcastOp::create(k.b, k.loc, k.b.getF32Type(),
                                 packHalfPair(k, high, rest));
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
/// are split into hi (weightHighPart: w cut to fp16) and lo = fp16(w - hi)
/// (about 21 bits together) by the softmax, once a weight and times
/// tensorCoreWeightScale (divided out of the sums at the end), so that the
/// parts are fp16 normals (packWeightHalves); a lane builds its B register from
/// two shared-memory words with one prmt (the split in the pass cost about nine
/// instructions a tile, and each weight was split by two lanes). With up to 4
/// query heads a KV head (Llama-3's 4) they take B's columns: hi in 0..3, lo
/// in 4..7, one m16n8k8 a channel tile (A the lane's values once, B one
/// register), and at the end lanes t and t + 2 add their sums with one shuffle.
/// With more, they fill m16n8k16's two reduction halves: B holds hi at indices
/// 2t, 2t + 1 and lo at 2t + 8, 2t + 9, A the lane's values at both (a register
/// move each). Either way the values' fp16 rounding is the one rounding the CPU
/// loops model (value-reads=f16). The warps' sums meet in shared memory, and
/// each (query head, channel) total goes to `store` once.
///
/// Values whose group is the whole head (PageReader::foldsValueScales) are
/// not dequantized: a token's channels share one scale and one zero, so
/// out[c][j] = sum_t (w_t * scale_t) * code_t[c] + sum_t w_t * zero_t. A
/// holds the codes' values, B the split of w * scale * 2^b (no HFMA2 a
/// value pair; 2^b keeps small scales' parts fp16 normals, and is divided
/// out at the end), which the softmax stores in place of the split of w
/// (foldedValueTerms), and the softmax's block reduction sums w * zero of
/// each head (`zeroSum`), added to its outputs at the end. The values are then
/// the dequantized ones, not rounded to fp16 (kvc/Numerics/FoldedScales.h). The
/// interior blocks read the codes as fp16 subnormals (code * 2^(bit - 24): no
/// HADD2 a pair; the tensor cores take subnormal inputs and form fp16 products
/// exactly), and their sums are scaled back once, after their loop; the edge
/// tiles mix pages with the residual buffer's rows and read the codes' values.
void mlir::kvc::emitTensorCoreValues(
    KernelBuilder &k, const SplitKernelSpec &spec,
    const SequenceSideView &values, Value kvHead, Value start, Value count,
    Value weights, function_ref<Value(Value)> zeroSum, Value valueStages,
    Value partials, function_ref<void(Value, Value, Value)> store) {
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
  // The softmax's decision (it stored the weights times the scales).
  const bool fold =
      softmaxSumsValueZeros(spec.valueProduct, spec.encoding.value, d);
  // What the weights carry beyond w (or w * scale).
  const double weightScale = tensorCoreWeightScale(spec);
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
  // Lanes past the group (B's zero padding): none at 4 (split columns) or
  // 8 query heads.
  const bool padded = group < (splitColumns ? 4 : 8);
  // The prmt selector that takes the lane's column of the two tokens'
  // packed (hi, lo) weights: hi or lo of both.
  Value halvesSelector = arith::SelectOp::create(
      b, loc, loColumn, k.i32(kLowHalvesSelector), k.i32(kHighHalvesSelector));

  // Tiles of 8 tokens, for fp16-pair layouts aligned to the sequence from
  // the one holding `start`: a lane's two tokens 2t and 2t + 1 lie in one
  // page, so in a tile wholly in the split and in pages they are located
  // once. (Other layouts: from `start`; aligned, one spilled.)
  Value base = direct ? k.sub(start, k.rem(start, 8)) : start;
  Value end = k.add(start, count);
  Value tiles = coveringBlocks(k, count, end, base, 8);
  SmallVector<Value> inits(channelTiles, zeros(k, accType));
  // value-stages: each warp's next interior blocks copied ahead into its
  // shared-memory stages (Staging.h).
  std::optional<ByteViews> staged;
  if (valueStages)
    staged = sharedBytes(k, valueStages);
  // The products of `tiles` consecutive tiles from `tileToken` added to
  // `accs`. Interior tiles (fp16-pair layouts: wholly in the split and in
  // pages) come two at a time, 16 tokens of one page located once (or
  // read from their copy at `stageBase` in the stages); their weights need
  // no bounds and their reads no branch.
  auto tileBody = [&](Value tileToken, ValueRange accs, bool interior,
                      int64_t tiles,
                      Value stageBase = Value()) -> SmallVector<Value> {
    // The lane's tokens (reduction indices 2t and 2t + 1 of each tile) as
    // offsets from `tileToken` and in the split (tokens before `start`
    // wrap around: like those past the end, not below `count`).
    SmallVector<Value> offsets, locals;
    for (int64_t h = 0; h < tiles; ++h)
      for (int64_t i = 0; i < 2; ++i) {
        offsets.push_back(k.add(k.mul(quad, 2), k.index(8 * h + i)));
        locals.push_back(k.sub(k.add(tileToken, offsets.back()), start));
      }
    // The weights (folded: times the token's scale and 2^b): the softmax
    // stored them as (hi, lo) fp16 pairs (packWeightHalves), so B is one
    // prmt of the two tokens' words (two for m16n8k16), zeros outside the
    // split and past the group.
    auto halvesFragment = [&](int64_t h) {
      SmallVector<Value, 2> words(2);
      for (int64_t i = 0; i < 2; ++i) {
        Value local = locals[2 * h + i], at = local;
        Value valid = padded ? inGroup : Value();
        if (!interior) {
          Value inSplit = k.cmp(arith::CmpIPredicate::ult, local, count);
          at = arith::SelectOp::create(b, loc, inSplit, local, k.index(0));
          valid =
              valid ? arith::AndIOp::create(b, loc, valid, inSplit) : inSplit;
        }
        words[i] = arith::BitcastOp::create(
            b, loc, b.getI32Type(),
            memref::LoadOp::create(b, loc, weights, ValueRange{weightRow, at}));
        if (valid)
          words[i] = arith::SelectOp::create(b, loc, valid, words[i], k.i32(0));
      }
      auto pick = [&](Value selector) -> Value {
        return LLVM::BitcastOp::create(
            b, loc, VectorType::get({2}, f16),
            NVVM::PermuteOp::create(b, loc, b.getI32Type(), words[0], words[1],
                                    selector, NVVM::PermuteMode::DEFAULT));
      };
      return splitColumns ? singleFragment(k, pick(halvesSelector))
                          : fragment(k, {pick(k.i32(kHighHalvesSelector)),
                                         pick(k.i32(kLowHalvesSelector))});
    };
    // An interior block's page, located once for its tiles.
    std::pair<Value, Value> located;
    if (interior && !stageBase)
      located = values.locate(b, loc, kvHead, tileToken);
    // An interior block's two tokens' columns, from its stage or its page.
    auto interiorColumns = [&](ArrayRef<Value> tileOffsets, ChannelSpan span,
                               bool dequantize) {
      if (stageBase)
        return values.reader->stagedHalfPairColumnTerms(
            b, loc, *staged, stageBase, kValueUnitTokens, tileOffsets[0],
            tileOffsets[1], span, dequantize);
      if (dequantize)
        return HalfPairTerms{
            values.halfPairColumnsInPage(b, loc, located.first, located.second,
                                         tileOffsets[0], tileOffsets[1], span),
            Value(), Value()};
      return values.halfPairColumnTermsInPage(b, loc, located.first,
                                              located.second, tileOffsets[0],
                                              tileOffsets[1], span);
    };
    // Tile h's products added to `in`.
    auto tileProducts = [&](int64_t h, ValueRange in) -> SmallVector<Value> {
      SmallVector<Value> next(in);
      ArrayRef<Value> tileOffsets = ArrayRef<Value>(offsets).slice(2 * h, 2);
      ArrayRef<Value> tileLocals = ArrayRef<Value>(locals).slice(2 * h, 2);
      SmallVector<Value> read;
      Value bWeights = halvesFragment(h);
      if (fold) {
        // The whole slab is one part: the codes (the scales and zeros are
        // in the weights and the softmax's zero sums).
        ChannelSpan span{slabFirst, part};
        if (interior) {
          read = interiorColumns(tileOffsets, span, /*dequantize=*/false).pairs;
        } else {
          for (Value local : tileLocals)
            llvm::append_range(read, readHalfPairTerms(k, values, kvHead, start,
                                                       local, count, span)
                                         .pairs);
        }
      }
      for (int64_t j = 0; j < channelTiles; ++j) {
        // Each part of the slab: both tokens read. Interior tiles are
        // located once; the others (never wholly in the split and in
        // pages) read each token on its own.
        if (!fold && j % (part / 2) == 0) {
          ChannelSpan span{k.add(slabFirst, k.index(2 * j)), part};
          if (interior) {
            read =
                interiorColumns(tileOffsets, span, /*dequantize=*/true).pairs;
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
    if (!staged) {
      innerLoop = k.loop(k.add(inner, warp), innerEnd, k.index(warps), inits,
                         [&](Value block, ValueRange accs) {
                           return tileBody(k.add(blockBase, k.mul(block, 16)),
                                           accs, /*interior=*/true, 2);
                         });
    } else {
      // Over the interior blocks' first tokens.
      const PageReader &reader = *values.reader;
      SegmentSource source = [&](Value pageBlock, Value slot, Value segment,
                                 int64_t) {
        return reader.tokenRowsSegment(b, loc, pageBlock, slot,
                                       kValueUnitTokens, segment);
      };
      Value first = k.add(blockBase, k.mul(k.add(inner, warp), 16));
      Value stop = k.add(blockBase, k.mul(innerEnd, 16));
      Value step = k.index(16 * warps);
      UnitStaging staging = UnitStaging::start(
          k, values, kvHead, *staged, /*regionBase=*/0, spec.valueStages,
          reader.tokenRowsBytes(kValueUnitTokens), source, first, stop, step);
      // Carried after the sums: the stage.
      SmallVector<Value> stagedInits(inits);
      stagedInits.push_back(k.index(0));
      innerLoop = k.loop(first, stop, step, stagedInits,
                         [&](Value blockToken, ValueRange carried) {
                           Value stageIndex = carried.back();
                           Value page = staging.pageAhead(blockToken);
                           Value stageBase = staging.await(stageIndex);
                           staging.copyAhead(blockToken, stageIndex, page);
                           SmallVector<Value> next =
                               tileBody(blockToken, carried.drop_back(),
                                        /*interior=*/true, 2, stageBase);
                           next.push_back(staging.nextStage(stageIndex));
                           return next;
                         });
    }
    // The tiles before and after the interior blocks.
    auto tileOf = [&](Value block) {
      return k.minU(k.div(k.sub(k.add(blockBase, k.mul(block, 16)), base), 8),
                    tiles);
    };
    edgeFirst = tileOf(inner);
    edgeRest = tileOf(innerEnd);
  }
  SmallVector<Value> edgeInits(
      innerLoop ? ValueRange(innerLoop.getResults().take_front(inits.size()))
                : ValueRange(inits));
  // Folded scales: the interior read its codes as fp16 subnormals (channel
  // tile j's weigh halfPairCodeWeight(j)); its sums scaled back (exact)
  // before the edges add theirs, read with the power subtracted. Codes
  // read as normals (mma-codes=normal) weigh 1: nothing to scale back.
  for (int64_t j = 0; fold && j < channelTiles; ++j)
    if (double weight = values.reader->halfPairCodeWeight(j, slab);
        weight != 1.0)
      edgeInits[j] = arith::MulFOp::create(b, loc, edgeInits[j],
                                           splat(k, accType, 1.0 / weight));
  Value edges = k.add(edgeFirst, k.sub(tiles, edgeRest));
  scf::ForOp tileLoop =
      k.loop(warp, edges, k.index(warps), edgeInits,
             [&](Value edge, ValueRange accs) -> SmallVector<Value> {
               Value tile = edgeBlock(k, edge, edgeFirst, edgeRest);
               return tileBody(k.add(base, k.mul(tile, 8)), accs,
                               /*interior=*/false, 1);
             });

  // Folded scales: the sums of weight * zero of heads 2t and 2t + 1 (the
  // softmax's, over the whole split: warp 0's outputs take them, the
  // others' are added to those; lanes past the group take the last head's
  // and store nothing).
  Value headZeroSums[2];
  if (fold) {
    Value firstWarp = k.cmp(arith::CmpIPredicate::eq, warp, k.index(0));
    for (int64_t h = 0; h < 2; ++h)
      headZeroSums[h] = arith::SelectOp::create(
          b, loc, firstWarp,
          zeroSum(
              k.minU(k.add(k.mul(quad, 2), k.index(h)), k.index(group - 1))),
          k.f32(0.0));
  }

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
        sum = fold
                  ? Value(LLVM::FMAOp::create(
                        b, loc, sum, k.f32(1.0 / weightScale), headZeroSums[h]))
                  : k.fmul(sum, k.f32(1.0 / weightScale));
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

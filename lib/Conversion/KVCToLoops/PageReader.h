//===- PageReader.h - emit dequantizing reads of packed pages ---*- C++ -*-===//
//
// Emits the arith/memref ops that read a token's channels (a span of them or
// the whole row) from a packed page block (docs/layout.md, version 1) or
// from the fp16 residual buffer, exactly as the
// numerics library defines it: code * scale + zero as a separate f32
// multiply and add, fp8 through a 256-entry table built from the numerics
// library's decoder.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOLOOPS_PAGEREADER_H
#define KVC_LIB_CONVERSION_KVCTOLOOPS_PAGEREADER_H

#include "kvc/Numerics/Layout.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Value.h"

#include <optional>

namespace mlir {
namespace kvc {

/// An index constant and an i32 constant: the readers' shorthands.
Value indexConst(OpBuilder &b, Location loc, int64_t value);
Value i32Const(OpBuilder &b, Location loc, int32_t value);

/// Channel-axis pages pair their channels (docs/layout.md, version 2). The
/// byte offset, from the codes region, of the 16-bit half that holds the
/// matrix-form bytes `byteInGroup` and `byteInGroup` + 1 (an even index)
/// of the group `pairFirstGroup` + `side` (tb * D + 2p + side, side 0 or
/// 1), `groupBytes` = G * b / 8: num::channelPairHalfOffset's addresses.
Value channelPairHalf(OpBuilder &b, Location loc, Value pairFirstGroup,
                      Value side, Value byteInGroup, int64_t groupBytes);
/// The same for group `groupIndex` (tb * D + `channel`) of any channel, an
/// odd D's unpaired last one included.
Value channelAxisHalf(OpBuilder &b, Location loc, Value groupIndex,
                      Value channel, Value byteInGroup, int64_t groupBytes,
                      int64_t headDim);
/// The byte offsets, from the params region, of that group's fp16 scale
/// and zero (num::channelAxisParamsOffsets).
std::pair<Value, Value> channelAxisParams(OpBuilder &b, Location loc,
                                          Value groupIndex, Value channel,
                                          int64_t headDim);

/// Runtime memory (a pool, a page table, a residual buffer) seen through a
/// raw `!llvm.ptr`: it is owned by the runtime, so it must not look like a
/// buffer that bufferization could free.
struct ByteViews {
  Value base; ///< !llvm.ptr (any address space: GPU kernels read global)
  /// The address `byteOffset` (an index) bytes past `base`.
  Value address(OpBuilder &b, Location loc, Value byteOffset) const;
  /// Loads a `type` value at byte `byteOffset` (an index), aligned to its
  /// size.
  Value load(OpBuilder &b, Location loc, Type type, Value byteOffset) const;
  /// Loads a vector of `count` `element`s at byte `byteOffset`, which the
  /// caller guarantees to be a multiple of `alignment` (16 gives one
  /// 16-byte load, `ld.global.v4` on the GPU).
  Value loadVector(OpBuilder &b, Location loc, Type element, int64_t count,
                   Value byteOffset, unsigned alignment) const;
  /// Stores `value` (an integer or float) at byte `byteOffset`, aligned to
  /// its size.
  void store(OpBuilder &b, Location loc, Value value, Value byteOffset) const;
};

/// Channels [first, first + count) of a token's row: `first` is an index
/// value, a multiple of `count`, and `count` divides head_dim. A key's dot
/// product folds the whole row; a thread of the value pass owns a span.
struct ChannelSpan {
  Value first;
  int64_t count;
};

/// The most channels, a power of two up to `maxChannels`, that divide
/// head_dim.
int64_t widestSpan(int64_t headDim, int64_t maxChannels);

/// Accumulators (channels of a span x query heads) a thread of the GPU value
/// pass keeps. Measured with ptxas 13 under min-blocks-per-sm=5 (96
/// registers): 32 spill 4-24 bytes (GQA 4 x 8 channels on sm_80, GQA 7 and
/// 8 x 4 channels on sm_90a); 16 spill on neither chip.
constexpr int64_t kMaxValueAccumulators = 16;

/// The span the value passes (GPU and CPU alike) read at once: up to 8
/// channels (8 fp16 values are one 16-byte load), fewer when the
/// `queryHeadsPerKVHead` query heads sharing them would need more than
/// kMaxValueAccumulators accumulators.
int64_t valueSpanChannels(int64_t headDim, int64_t queryHeadsPerKVHead);

/// The widest span a fold emits chunk after chunk rather than as a loop:
/// the value passes' spans (whole key rows loop over their chunks).
constexpr int64_t kMaxUnrolledSpan = 8;

/// Receives the f32 values of channels firstChannel .. firstChannel +
/// values.size() - 1 of one token and the values a fold carries; returns
/// their updates. Ops are created with the builder the fold was given. A
/// span of at most the reader's unrolled span (kMaxUnrolledSpan unless
/// PageReader::setMaxUnrolledSpan says more) is unrolled, and `spanOffset`
/// is then the chunk's static offset from the span's first channel (so a
/// caller can keep one accumulator per channel); in a loop it is nullopt.
using ChannelChunkFn = function_ref<SmallVector<Value>(
    Value firstChannel, std::optional<int64_t> spanOffset,
    ArrayRef<Value> values, ValueRange carried)>;

/// memref.load of a float element, extended to f32 (queries and masks may
/// be f16 or bf16; attention computes in f32).
Value loadAsF32(OpBuilder &b, Location loc, Value memref, ValueRange indices);

/// How integer codes become floats before their scale and zero apply; both
/// are exact.
enum class CodeToFloat {
  /// arith.uitofp (x86: cvtsi2ss; sm_80: I2F on the conversion unit, 16
  /// per clock and SM; sm_90a: I2FP.F32.U32).
  Convert,
  /// The code ORed into the mantissa of 2^23, reinterpreted, minus 2^23: an
  /// integer and a float operation at their full rates.
  Bits,
};

/// How the tensor-core passes read the codes whose scales they fold into
/// their other operand (kvc-lower-to-gpu's mma-codes).
enum class FoldedCodes : uint8_t {
  /// ANDed into fp16 halves with exponent 0: subnormals code * 2^(bit -
  /// 24), one LOP3 a pair. Relies on the tensor cores taking binary16
  /// subnormal inputs exactly.
  Subnormal,
  /// ORed into the mantissa of a power of two, the power subtracted: fp16
  /// normals worth the code itself (or zero), one HADD2 a pair more.
  Normal,
};

/// Where a token of a 32-token unit sits in PageReader's token pairs.
struct TokenPairSlot {
  Value lane;       ///< index: the lane group (0..7) that reads it
  Value secondTile; ///< i1: in tile 1 (else 0)
  Value secondRow;  ///< i1: the pair's second token (else its first)
};

/// A unit's channel-axis token pairs before their dequantization: the
/// codes' values as fp16 pairs (PageReader::compressedTokenPairs' layout)
/// and, for channel pair j of the span, its (scale 2j, scale 2j + 1) and
/// (zero 2j, zero 2j + 1) pairs.
struct TokenPairTerms {
  SmallVector<Value> codes, scales, zeros;
};

/// Token-axis fp16 pairs before their dequantization: the codes' values
/// (PageReader::compressedHalfPairs' or compressedHalfPairColumns' layout)
/// and the scales and zeros of the pairs' halves (one token's: the same in
/// both; two tokens' columns: each token's in its half).
struct HalfPairTerms {
  SmallVector<Value> pairs;
  Value scales, zeros;

  /// As one list (an scf.if's results): the pairs, the scales, the zeros.
  SmallVector<Value> flatten() const {
    SmallVector<Value> all(pairs);
    all.push_back(scales);
    all.push_back(zeros);
    return all;
  }
  static HalfPairTerms unflatten(ValueRange all) {
    return {SmallVector<Value>(all.drop_back(2)), all[all.size() - 2],
            all.back()};
  }
};

/// Reads one side (keys or values) of a layer's pages.
class PageReader {
public:
  /// `fp8Table` is a memref<256xf32> with the side's fp8 decoding table,
  /// or null when the side is not fp8.
  PageReader(const ::kvc::numerics::SideEncoding &side, unsigned headDim,
             unsigned pageTokens, ByteViews pool, Value fp8Table,
             CodeToFloat codeToFloat = CodeToFloat::Convert);

  /// The block layout the reader assumes.
  const ::kvc::numerics::BlockLayout &getLayout() const { return layout; }
  /// The pool the reader reads (block bases are byte offsets into it).
  const ByteViews &getPool() const { return pool; }

  /// Spans of up to `channels` are read chunk after chunk, unrolled, so that
  /// callbacks see static offsets (default kMaxUnrolledSpan); longer spans
  /// loop over their chunks.
  void setMaxUnrolledSpan(int64_t channels) { unrolledSpan = channels; }

  /// The span of all D channels.
  ChannelSpan wholeRow(OpBuilder &b, Location loc) const;

  /// Folds `fn` over the channels of `span` of token `slot` of the block at
  /// byte `blockBase`, in channel order, dequantized as the numerics
  /// library defines it, read in as few and as wide loads as the layout and the
  /// span allow: up to 16-byte loads of fp16, fp8 and token-axis code rows; for
  /// channel-axis codes, whose token code sits in a different group per
  /// channel, one code word per channel and one 16-byte load of four
  /// channels' (scale, zero) pairs.
  SmallVector<Value> foldCompressedRow(OpBuilder &b, Location loc,
                                       Value blockBase, Value slot,
                                       ChannelSpan span, ValueRange inits,
                                       ChannelChunkFn fn) const;
  /// The same over row `row` of the fp16 residual buffer.
  SmallVector<Value> foldResidualRow(OpBuilder &b, Location loc,
                                     const ByteViews &residual, Value headBase,
                                     Value row, ChannelSpan span,
                                     ValueRange inits, ChannelChunkFn fn) const;

  /// GPU kernels: the fp16-pair reads may use PTX inline assembly (one
  /// lop3.b32 for codePair's AND and OR) and NVVM's prmt.
  void setInlinePTX(bool enable) { inlinePTX = enable; }
  /// How the folded reads (the `...Terms` reads the tensor-core passes
  /// multiply without dequantizing) read codes; Subnormal by default.
  void setFoldedCodes(FoldedCodes codes) { foldedCodes = codes; }
  bool foldsSubnormalCodes() const {
    return foldedCodes == FoldedCodes::Subnormal;
  }
  /// Bytes of the 8-byte pool `high`:`low` (i32 values), byte i of the
  /// result byte (selector >> 4i) & 7 of the pool: PTX prmt.b32 (NVVM's
  /// prmt on the GPU, a shuffle of bytes elsewhere).
  Value permuteBytes(OpBuilder &b, Location loc, Value low, Value high,
                     uint32_t selector) const;
  /// The two `bits`-bit codes of `word` at bits `position` and `position` +
  /// 16 as an fp16 pair of their values: ORed into the mantissas of
  /// 2^(10 - position) (the exponent that makes bit `position` the units
  /// digit; position + bits <= 10), that power subtracted (exact). Codes
  /// below bit 10 thus need no shift; nor do 8-bit codes, at any byte
  /// (`position` 0 or 8): one permute of the code bytes under the exponent
  /// byte of 1024. The dequantizing reads add one fma with the group's
  /// scale and zero (vector<2xf16> each). With `subnormal` the codes are
  /// ANDed into an exponent of 0 instead: fp16 subnormals code *
  /// foldedCodeWeight(bits, position), exact, with no power to
  /// subtract (for products whose sums the consumer scales back anyway).
  Value codePair(OpBuilder &b, Location loc, Value word, unsigned bits,
                 unsigned position, bool subnormal = false) const;
  /// What one unit of a code at bit `position` weighs in the folded reads:
  /// 2^(bit - 24) as subnormals, bit its mantissa bit; 1 as normals.
  double foldedCodeWeight(unsigned bits, unsigned position) const;

  /// Whether the reader dequantizes straight into fp16 pairs
  /// (compressedHalfPairs): token-axis 2-, 4- and 8-bit codes.
  bool readsHalfPairs() const;
  /// The channels of the span that pair k of compressedHalfPairs and
  /// residualHalfPairs holds, as offsets from the span's first channel, for
  /// spans of `count` channels (8 or 16). The order follows the codes'
  /// bits: a word of 32 / b codes gives pairs (i, i + 16 / b).
  SmallVector<std::pair<int64_t, int64_t>> halfPairOrder(int64_t count) const;
  /// Channels `span` (8 or 16 of them, `span.first` a multiple of the count)
  /// of token `slot` of the block at `blockBase` as vector<2xf16> pairs in
  /// halfPairOrder: two codes ORed into the mantissas of an fp16 pair
  /// (codePair; codes below bit 10 of a word in place, the others
  /// after one shift by 8 a word), then one fma with
  /// the group's fp16 scale and zero: code * scale + zero rounded once to
  /// fp16 (the f32 path rounds it to f32 first; they differ by at most one
  /// fp16 ulp, and only where that f32 rounding lands on an fp16 tie).
  /// Needs readsHalfPairs().
  SmallVector<Value> compressedHalfPairs(OpBuilder &b, Location loc,
                                         Value blockBase, Value slot,
                                         ChannelSpan span) const;
  /// The same reads before the fma (the value pass folds the scales into
  /// its weights: foldsValueScales).
  HalfPairTerms compressedHalfPairTerms(OpBuilder &b, Location loc,
                                        Value blockBase, Value slot,
                                        ChannelSpan span) const;
  /// Whether the tensor-core value pass folds this side's scales into its
  /// weights (kvc/Numerics/FoldedScales.h): token-axis 2-, 4- and 8-bit
  /// codes in groups of the whole head.
  bool foldsValueScales() const;
  /// The power of two the tensor-core key pass's queries carry where it
  /// folds this side's scales into them (numerics::foldedKeyQueryScale:
  /// 2^(bits - 4)). Needs readsTokenPairs().
  double foldedQueryScale() const;
  /// The same channels of the tokens at slots `firstSlot` and `secondSlot`
  /// of one block, paired by channel (the tensor-core value pass's A
  /// registers): element 2k holds channel halfPairOrder[k].first of both
  /// tokens (the first in the low half), element 2k + 1 channel
  /// halfPairOrder[k].second. The two tokens' code words are transposed
  /// before the dequantization (their low halves in one word, their high
  /// halves in another: a PRMT each), so no dequantized pair needs one;
  /// the numerics are compressedHalfPairs'.
  SmallVector<Value> compressedHalfPairColumns(OpBuilder &b, Location loc,
                                               Value blockBase, Value firstSlot,
                                               Value secondSlot,
                                               ChannelSpan span) const;
  /// The same reads before the fma, as the folded reads: pair
  /// 2k's and 2k + 1's codes weigh halfPairCodeWeight(k, span.count) (the
  /// value pass folds the scales into its weights and scales its sums back).
  HalfPairTerms compressedHalfPairColumnTerms(OpBuilder &b, Location loc,
                                              Value blockBase, Value firstSlot,
                                              Value secondSlot,
                                              ChannelSpan span) const;
  /// What one unit of a code weighs in pair `pair` (halfPairOrder's index)
  /// of a `count`-channel span in the folded reads (foldedCodeWeight).
  double halfPairCodeWeight(int64_t pair, int64_t count) const;
  /// The same channels of row `row` of the fp16 residual buffer, in the
  /// same pair order (as stored: no rounding).
  SmallVector<Value> residualHalfPairs(OpBuilder &b, Location loc,
                                       const ByteViews &residual,
                                       Value headBase, Value row,
                                       ChannelSpan span) const;

  /// Whether the reader dequantizes straight into fp16 pairs of two
  /// tokens (compressedTokenPairs): channel-axis 2-, 4- and 8-bit codes.
  bool readsTokenPairs() const;
  /// Tokens between the two of a token pair (rows g and g + 8 of a tile):
  /// 1.
  int64_t tokenPairStride() const;
  /// What one unit of a code of row `row` (0 or 1) of tile `tile` (0 or 1)
  /// weighs in the folded reads of compressedTokenPairTerms.
  double tokenPairCodeWeight(int64_t tile, int64_t row) const;
  /// The first token (offset in its 32-token unit) of lane group `lane`'s
  /// pair in tile `tile` (0 or 1); the second is tokenPairStride() later.
  /// The 16 (lane group, tile) pairs cover the unit once (HalfPairs.cpp).
  Value tokenPairFirst(OpBuilder &b, Location loc, Value lane,
                       int64_t tile) const;
  /// The inverse: where token `within` (0..31) of a unit is read.
  TokenPairSlot tokenPairSlot(OpBuilder &b, Location loc, Value within) const;
  /// Channels `span` (a multiple of 4 of them, `span.first` a multiple of
  /// 4) of lane group `lane`'s tokens of the unit at slot `unitSlot` (a
  /// multiple of 32) of the block at `blockBase`, in the layout the
  /// tensor-core key pass's A fragments take: element (2 * tile + row) *
  /// span.count / 2 + j is channels 2j, 2j + 1 of the span of the token
  /// tokenPairFirst(lane, tile) + row * tokenPairStride(). Each channel
  /// pair's codes of the lane's four tokens in one 4-byte load (8-bit: 8
  /// bytes) and at most one shift (HalfPairs.cpp), four channels' (scale,
  /// zero) in one 16-byte load, code * scale + zero rounded once to fp16
  /// (as compressedHalfPairs). Needs readsTokenPairs().
  SmallVector<Value> compressedTokenPairs(OpBuilder &b, Location loc,
                                          Value blockBase, Value unitSlot,
                                          Value lane, ChannelSpan span) const;
  /// The same reads before the fma: the codes' values (exact, in
  /// compressedTokenPairs' layout) and each channel pair's scales and
  /// zeros, which the tensor-core key pass folds into its products. With
  /// `subnormal` the codes are codePair's subnormal reads, tile m's values
  /// code * tokenPairCodeWeight(m), one HADD2 a pair fewer.
  TokenPairTerms compressedTokenPairTerms(OpBuilder &b, Location loc,
                                          Value blockBase, Value unitSlot,
                                          Value lane, ChannelSpan span,
                                          bool subnormal = false) const;
  /// A unit's reads staged in shared memory (the tensor-core key pass's
  /// key-stages): its copy takes tokenPairUnitBytes(), the code bytes of
  /// its channel pairs in order (tokenPairUnitCodeBytes(), 8b a pair),
  /// then its group row's (scale, zero) of every channel (4 a channel).
  int64_t tokenPairUnitBytes() const;
  /// The same for any `bits`-bit keys of `headDim` channels.
  static int64_t tokenPairUnitBytes(int64_t headDim, unsigned bits);
  int64_t tokenPairUnitCodeBytes() const;
  /// Byte offset in the pool of 16-byte segment `segment` (an index) of the
  /// copy of the unit at slot `unitSlot` of the block at `blockBase`: a
  /// code segment (below tokenPairUnitCodeBytes() / 16) when `code`, else a
  /// parameter segment. Segments never straddle a channel pair.
  Value tokenPairUnitSegment(OpBuilder &b, Location loc, Value blockBase,
                             Value unitSlot, Value segment, bool code) const;
  /// compressedTokenPairTerms from such a copy at byte `stageBase` of
  /// `stage` (the same loads: a 4-byte word a channel pair, 16 bytes of
  /// parameters a channel-pair pair).
  TokenPairTerms stagedTokenPairTerms(OpBuilder &b, Location loc,
                                      const ByteViews &stage, Value stageBase,
                                      Value lane, ChannelSpan span,
                                      bool subnormal) const;
  /// `tokens` consecutive token-axis rows staged in shared memory (the
  /// tensor-core value pass's value-stages): their code rows, then their
  /// groups' (scale, zero) pairs, tokenRowsBytes(tokens) in all.
  int64_t tokenRowsBytes(int64_t tokens) const;
  /// The same for any `bits`-bit values in groups of `group` channels.
  static int64_t tokenRowsBytes(int64_t tokens, int64_t headDim,
                                unsigned bits, unsigned group);
  /// Byte offset in the pool of 16-byte segment `segment` (an index) of the
  /// copy of the `tokens` rows from slot `firstSlot` of the block at
  /// `blockBase`.
  Value tokenRowsSegment(OpBuilder &b, Location loc, Value blockBase,
                         Value firstSlot, int64_t tokens, Value segment) const;
  /// compressedHalfPairColumns (`dequantize`) or compressedHalfPairColumnTerms
  /// of rows `firstRow` and `secondRow` (indices below `tokens`) of such a
  /// copy at byte `stageBase` of `stage`.
  HalfPairTerms stagedHalfPairColumnTerms(OpBuilder &b, Location loc,
                                          const ByteViews &stage,
                                          Value stageBase, int64_t tokens,
                                          Value firstRow, Value secondRow,
                                          ChannelSpan span,
                                          bool dequantize) const;
  /// The same tokens and layout from the fp16 residual buffer, the unit's
  /// first token at row `unitRow`.
  SmallVector<Value> residualTokenPairs(OpBuilder &b, Location loc,
                                        const ByteViews &residual,
                                        Value headBase, Value unitRow,
                                        Value lane, ChannelSpan span) const;


private:
  /// A token-axis span's code words (compressedHalfPairs' bit layout:
  /// code i + 16 / b 16 bits above code i) and its group's (scale, zero)
  /// as vector<2xf16>.
  struct HalfPairWords {
    SmallVector<Value> words;
    Value params;
  };
  HalfPairWords halfPairWords(OpBuilder &b, Location loc, Value blockBase,
                              Value slot, ChannelSpan span) const;
  /// The same from `views`, the token's code row at `rowBase` and its
  /// groups' (scale, zero) pairs at `pairRow`.
  HalfPairWords halfPairWordsAt(OpBuilder &b, Location loc,
                                const ByteViews &views, Value rowBase,
                                Value pairRow, ChannelSpan span) const;
  /// halfPairColumnTerms of two tokens' words.
  HalfPairTerms halfPairColumnTermsOf(OpBuilder &b, Location loc,
                                      const HalfPairWords &first,
                                      const HalfPairWords &second,
                                      ChannelSpan span, bool dequantize) const;
  /// compressedHalfPairs (`dequantize`) or its terms.
  HalfPairTerms halfPairTerms(OpBuilder &b, Location loc, Value blockBase,
                              Value slot, ChannelSpan span,
                              bool dequantize) const;
  /// compressedHalfPairColumns (`dequantize`) or its terms.
  HalfPairTerms halfPairColumnTerms(OpBuilder &b, Location loc,
                                    Value blockBase, Value firstSlot,
                                    Value secondSlot, ChannelSpan span,
                                    bool dequantize) const;
  /// The code pairs of one such word in bit order (codePair, `subnormal`
  /// reads or not): its first min(count, 32 / b) codes from bit 0 (a
  /// `count`-channel span's), count / 2 pairs, each passed through `finish`
  /// (if any) as it is read.
  SmallVector<Value> wordCodePairs(OpBuilder &b, Location loc, Value word,
                                   int64_t count,
                                   function_ref<Value(Value)> finish = {},
                                   bool subnormal = false) const;
  /// The same pairs dequantized: one fma each with `scale` and `zero`.
  SmallVector<Value> dequantizeWordPairs(OpBuilder &b, Location loc,
                                         Value word, int64_t count,
                                         Value scale, Value zero) const;
  /// Byte offsets of token `slot`'s code row and of its groups' (scale,
  /// zero) pairs in the token-axis block at `blockBase`.
  std::pair<Value, Value> tokenAxisRows(OpBuilder &b, Location loc,
                                        Value blockBase, Value slot) const;
  SmallVector<Value> foldTokenAxisRow(OpBuilder &b, Location loc,
                                      Value blockBase, Value slot,
                                      ChannelSpan span, ValueRange inits,
                                      ChannelChunkFn fn) const;
  SmallVector<Value> foldChannelAxisRow(OpBuilder &b, Location loc,
                                        Value blockBase, Value slot,
                                        ChannelSpan span, ValueRange inits,
                                        ChannelChunkFn fn) const;
  /// The code at `index` of the channel-axis unit `unitInGroup` bytes into
  /// a group (matrix form), read from the 16-bit halves of the paired page
  /// at `blockBase` + halfOffset(matrix-form byte in the group): of one
  /// channel (`channels` 1), or of both channels of a pair (2: halfOffset
  /// gives the pair's first channel's half, and one 4-byte load reads
  /// both).
  SmallVector<Value> channelAxisCodes(
      OpBuilder &b, Location loc, Value blockBase, Value unitInGroup,
      Value index, int64_t channels,
      function_ref<Value(Value)> halfOffset) const;
  /// compressedTokenPairTerms' loads from `views`: channel pair j of the
  /// span's code words of the unit at `codes` + j * `pairStride`, its
  /// (scale, zero) pairs at `params` + 8j.
  TokenPairTerms tokenPairTermsAt(OpBuilder &b, Location loc,
                                  const ByteViews &views, Value codes,
                                  int64_t pairStride, Value params, Value lane,
                                  ChannelSpan span, bool subnormal) const;
  /// Codes position .. position + count - 1 (i32 values) of the 32-code
  /// packing unit at byte `unitBase` of a token-axis page: with
  /// channelAxisCodes (the same words split by the channel pairing), the
  /// places that know the bit layout (layout.md, section 2). `position` (an
  /// index) is a multiple of `count`; loads of whole words are aligned to
  /// `alignment` at most.
  SmallVector<Value> unitCodes(OpBuilder &b, Location loc, Value unitBase,
                               Value position, int64_t count,
                               unsigned alignment) const;

  ::kvc::numerics::SideEncoding side;
  unsigned headDim, pageTokens;
  ::kvc::numerics::BlockLayout layout;
  ByteViews pool;
  Value fp8Table;
  CodeToFloat codeToFloat;
  bool inlinePTX = false;
  FoldedCodes foldedCodes = FoldedCodes::Subnormal;
  int64_t unrolledSpan = kMaxUnrolledSpan;
};

/// One side (keys or values) of one sequence, for a run of KV heads that
/// share an encoding: compressed tokens are read from their pages (through
/// the page table), the others from the fp16 residual buffer.
struct SequenceSideView {
  const PageReader *reader;
  ByteViews pageTable; ///< the sequence's int32 page indices
  ByteViews residual;  ///< its fp16 [R][D] buffers, one per KV head
  Value compressed;    ///< index: tokens stored in pages
  uint64_t pageBytes;  ///< a whole page of the pool (all heads' blocks)
  /// Byte offset within a page of the block of the run's first KV head
  /// `runFirst` (an index); the run's other heads follow at the reader's
  /// block size (docs/layout.md, per-head encodings).
  uint64_t runOffset;
  Value runFirst;
  uint64_t residualHeadBytes;
  unsigned pageTokens;

  /// Folds `fn` over the channels of `span` of token `token` of KV head
  /// `head`: the token is located once (page table or residual row), then
  /// read with PageReader's wide row loads.
  SmallVector<Value> foldChannels(OpBuilder &b, Location loc, Value head,
                                  Value token, ChannelSpan span,
                                  ValueRange inits, ChannelChunkFn fn) const;

  /// Channels `span` of token `token` of KV head `head` as fp16 pairs in
  /// the reader's halfPairOrder (PageReader::compressedHalfPairs or
  /// residualHalfPairs); the reader must readsHalfPairs().
  SmallVector<Value> halfPairs(OpBuilder &b, Location loc, Value head,
                               Value token, ChannelSpan span) const;
  /// halfPairs as terms (PageReader::compressedHalfPairTerms; residual rows
  /// as stored with scale 1 and zero 0).
  HalfPairTerms halfPairTerms(OpBuilder &b, Location loc, Value head,
                              Value token, ChannelSpan span) const;

  /// The pool index (i32) of the sequence's page `pageSlot` (an index): its
  /// page table's entry (KVC_RT_PAGE_HOLE, -1, for a page eviction
  /// released).
  Value pageIndex(OpBuilder &b, Location loc, Value pageSlot) const;
  /// Byte offset in the pool of the block of `head` in pool page `page`
  /// (an i32 pool index).
  Value blockBase(OpBuilder &b, Location loc, Value head, Value page) const;
  /// Byte offset of the block of `head` in the page holding compressed
  /// token `token`, and the token's slot in it.
  std::pair<Value, Value> locate(OpBuilder &b, Location loc, Value head,
                                 Value token) const;
  /// Channels `span` of the tokens at slots `slot` + `firstOffset` and
  /// `slot` + `secondOffset` of the block at `blockBase`, paired by
  /// channel (PageReader::compressedHalfPairColumns).
  SmallVector<Value> halfPairColumnsInPage(OpBuilder &b, Location loc,
                                           Value blockBase, Value slot,
                                           Value firstOffset,
                                           Value secondOffset,
                                           ChannelSpan span) const;
  /// The same as terms, the folded reads
  /// (PageReader::compressedHalfPairColumnTerms).
  HalfPairTerms halfPairColumnTermsInPage(OpBuilder &b, Location loc,
                                          Value blockBase, Value slot,
                                          Value firstOffset,
                                          Value secondOffset,
                                          ChannelSpan span) const;
  /// Lane group `lane`'s token pairs (PageReader::compressedTokenPairs'
  /// layout) of the 32-token unit that starts at token `unitToken` (a
  /// multiple of 32: a unit is wholly in pages or wholly in the residual
  /// buffer, whose rows past the sequence's end are read but stand for no
  /// token). The reader must readsTokenPairs().
  SmallVector<Value> tokenPairs(OpBuilder &b, Location loc, Value head,
                                Value unitToken, Value lane,
                                ChannelSpan span) const;
  /// The terms of tokenPairs of a unit in pages, the folded reads
  /// (PageReader::compressedTokenPairTerms): the tensor-core key pass's
  /// reads.
  TokenPairTerms tokenPairTermsInPages(OpBuilder &b, Location loc, Value head,
                                       Value unitToken, Value lane,
                                       ChannelSpan span) const;
  /// tokenPairs of a unit in the residual buffer (fp16 rows as stored).
  SmallVector<Value> residualTokenPairs(OpBuilder &b, Location loc,
                                        Value head, Value unitToken,
                                        Value lane, ChannelSpan span) const;
  /// Folds `fn` once over channels `span` of token `token` read through
  /// tokenPairs (its unit, lane group and tile, then its row), as f32: the
  /// CPU loops' twin of the tensor-core key pass's reads.
  SmallVector<Value> foldTokenPairChannels(OpBuilder &b, Location loc,
                                           Value head, Value token,
                                           ChannelSpan span, ValueRange inits,
                                           ChannelChunkFn fn) const;

};

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOLOOPS_PAGEREADER_H

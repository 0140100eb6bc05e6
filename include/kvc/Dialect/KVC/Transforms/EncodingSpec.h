//===- EncodingSpec.h - textual cache encoding specs ------------*- C++ -*-===//
//
// The compact spec language users write on the command line:
//   key=q2:channel:g32,value=q2:token:g32,residual=128
// with per-layer overrides `0-3:key=q4:channel:g32;31:value=fp16`.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_DIALECT_KVC_TRANSFORMS_ENCODINGSPEC_H
#define KVC_DIALECT_KVC_TRANSFORMS_ENCODINGSPEC_H

#include "kvc/Dialect/KVC/IR/KVCAttrs.h"
#include "llvm/Support/Error.h"

#include <optional>

namespace mlir {
namespace kvc {

/// A possibly partial encoding: unset parts are inherited.
struct EncodingSpec {
  SideEncodingAttrInterface key;
  SideEncodingAttrInterface value;
  std::optional<unsigned> residual;

  /// The decoupled KIVI-style default: 2-bit per-channel keys, 2-bit
  /// per-token values, groups of 32, 128 fp16 residual tokens.
  static EncodingSpec getDefault(MLIRContext *context);
  /// This spec with the parts `other` sets replaced.
  EncodingSpec overriddenBy(const EncodingSpec &other) const;
  /// The encoding, if complete; unset parts are an error.
  FailureOr<EncodingAttr>
  toAttr(MLIRContext *context,
         function_ref<InFlightDiagnostic()> emitError) const;
};

/// A spec that applies to layers [first, last].
struct LayerOverride {
  unsigned first, last;
  EncodingSpec spec;
};

/// Parses `key=...,value=...,residual=N` (any subset, any order). Errors
/// quote the offending token.
llvm::Expected<EncodingSpec> parseEncodingSpec(StringRef text,
                                               MLIRContext *context);

/// Parses one side: `fp16`, `q<bits>:<channel|token>:g<group>` or
/// `fp8:<e4m3|e5m2>`.
llvm::Expected<SideEncodingAttrInterface> parseSideSpec(StringRef text,
                                                        MLIRContext *context);

/// Parses `0-3:key=q4:channel:g32;31:value=fp16`.
llvm::Expected<SmallVector<LayerOverride>>
parseLayerOverrides(StringRef text, MLIRContext *context);

/// The inverse of parseSideSpec, for reports.
std::string formatSideSpec(SideEncodingAttrInterface side);

} // namespace kvc
} // namespace mlir

#endif // KVC_DIALECT_KVC_TRANSFORMS_ENCODINGSPEC_H

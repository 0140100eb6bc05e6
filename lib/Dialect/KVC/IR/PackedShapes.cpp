//===- PackedShapes.cpp - tensor shapes of packed kvc data ----------------===//

#include "kvc/Dialect/KVC/IR/PackedShapes.h"

#include "kvc/Numerics/Quantize.h"
#include "mlir/IR/BuiltinTypeInterfaces.h"

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

FailureOr<PackedShapes>
mlir::kvc::computePackedShapes(SideEncodingAttrInterface encoding,
                               ArrayRef<int64_t> unpacked,
                               function_ref<InFlightDiagnostic()> emitError) {
  if (unpacked.size() < 2)
    return emitError() << "expects a tensor of ... x tokens x channels (rank "
                          ">= 2), got rank "
                       << unpacked.size();
  ArrayRef<int64_t> leading = unpacked.drop_back(2);
  int64_t tokens = unpacked[unpacked.size() - 2];
  int64_t channels = unpacked.back();
  if (ShapedType::isDynamic(channels))
    return emitError() << "the channel dimension must be static";
  bool dynamicTokens = ShapedType::isDynamic(tokens);

  auto withLeading = [&](ArrayRef<int64_t> matrixShape) {
    SmallVector<int64_t> shape(leading);
    shape.append(matrixShape.begin(), matrixShape.end());
    // The first dim of every matrix-form tensor derives from the tokens.
    if (dynamicTokens)
      shape[leading.size()] = ShapedType::kDynamic;
    return shape;
  };

  PackedShapes shapes;
  if (auto fp8 = dyn_cast<FP8Attr>(encoding)) {
    shapes.codes = withLeading({dynamicTokens ? 1 : tokens, channels});
    shapes.scales = withLeading({dynamicTokens ? 1 : tokens});
    return shapes;
  }
  auto quant = dyn_cast<QuantAttr>(encoding);
  if (!quant)
    return emitError() << "expects a #kvc.quant or #kvc.fp8 encoding";
  num::QuantSpec spec = quant.toNumerics().quant;
  // A dynamic token count is checked with one group of tokens; the real
  // count is checked when it is known.
  int64_t checkedTokens = dynamicTokens ? int64_t(spec.group) : tokens;
  std::string problem = num::validateQuantShape(spec, checkedTokens, channels);
  if (!problem.empty())
    return emitError() << problem;
  shapes.codes = withLeading(num::quantCodesShape(spec, checkedTokens, channels));
  SmallVector<int64_t> params =
      withLeading(num::quantParamsShape(spec, checkedTokens, channels));
  shapes.scales = params;
  shapes.zeros = params;
  return shapes;
}

//===- DecoupleCompression.cpp - assign K/V encodings to caches -----------===//
//
// Gives every cache an encoding whose key and value parts are chosen
// independently, from a spec with per-layer overrides, and retypes the
// cache values and function signatures that carry it.
//
//===----------------------------------------------------------------------===//

#include "kvc/Dialect/KVC/Transforms/CacheRoots.h"
#include "kvc/Dialect/KVC/Transforms/EncodingSpec.h"
#include "kvc/Dialect/KVC/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCDECOUPLECOMPRESSION
#include "kvc/Dialect/KVC/Transforms/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;
using namespace mlir::kvc;

namespace {

struct DecoupleCompressionPass
    : public mlir::kvc::impl::KVCDecoupleCompressionBase<
          DecoupleCompressionPass> {
  using Base::Base;

  void runOnOperation() override;

private:
  LogicalResult retypeFunction(func::FuncOp func, Type storage,
                               const EncodingSpec &base,
                               ArrayRef<LayerOverride> overrides);
};

} // namespace

LogicalResult DecoupleCompressionPass::retypeFunction(
    func::FuncOp func, Type storage, const EncodingSpec &base,
    ArrayRef<LayerOverride> overrides) {
  MLIRContext *context = func.getContext();
  for (CacheRoot root : collectCacheRoots(func)) {
    auto type = cast<CacheType>(root.value.getType());
    if (type.getEncoding() && !overwrite)
      continue;
    EncodingSpec spec = base;
    for (const LayerOverride &layerOverride : overrides)
      if (root.layer >= layerOverride.first && root.layer <= layerOverride.last)
        spec = spec.overriddenBy(layerOverride.spec);
    Location loc = root.value.getLoc();
    auto emitError = [&]() {
      return mlir::emitError(loc) << "layer " << root.layer << ": ";
    };
    FailureOr<EncodingAttr> encoding = spec.toAttr(context, emitError);
    if (failed(encoding))
      return failure();
    CacheType newType = CacheType::getChecked(
        emitError, context, type.getShape(), storage, *encoding);
    if (!newType ||
        failed(propagateCacheType(root.value, newType,
                                  "kvc-decouple-compression")))
      return failure();
  }
  // The signature follows the retyped arguments and returned values.
  SmallVector<Type> results(func.getResultTypes());
  func.walk([&](func::ReturnOp op) {
    for (auto [index, operand] : llvm::enumerate(op.getOperands()))
      results[index] = operand.getType();
  });
  func.setType(FunctionType::get(
      context, func.getBody().getArgumentTypes(), results));
  return success();
}

void DecoupleCompressionPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *context = &getContext();
  auto fail = [&](const llvm::Twine &message) {
    emitError(module.getLoc()) << "kvc-decouple-compression: " << message;
    signalPassFailure();
  };

  llvm::Expected<EncodingSpec> spec = parseEncodingSpec(this->spec, context);
  if (!spec)
    return fail("bad spec: " + llvm::toString(spec.takeError()));
  llvm::Expected<SmallVector<LayerOverride>> overrides =
      parseLayerOverrides(layers, context);
  if (!overrides)
    return fail("bad layers option: " + llvm::toString(overrides.takeError()));
  Type storage = llvm::StringSwitch<Type>(storageType)
                     .Case("f16", Float16Type::get(context))
                     .Case("bf16", BFloat16Type::get(context))
                     .Case("f32", Float32Type::get(context))
                     .Default(Type());
  if (!storage)
    return fail("bad storage-type '" + storageType +
                "' (expected f16, bf16 or f32)");
  EncodingSpec base = EncodingSpec::getDefault(context).overriddenBy(*spec);

  for (auto func : module.getOps<func::FuncOp>())
    if (!func.isExternal() &&
        failed(retypeFunction(func, storage, base, *overrides)))
      return signalPassFailure();
}

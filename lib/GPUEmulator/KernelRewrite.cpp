//===- KernelRewrite.cpp - NVPTX kernels rewritten to run on the host -----===//

#include "KernelRewrite.h"
#include "EmulatorAbi.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/InlineAsm.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Triple.h"

using namespace llvm;

namespace kvc {
namespace gpuemu {

std::string entryName(const std::string &kernel) {
  return "__kvc_emu_entry." + kernel;
}

namespace {

Error unsupported(const Twine &what) {
  return createStringError(inconvertibleErrorCode(),
                           "kvc gpu emulator: " + what);
}

/// Rewrites one module; each lower* returns the call's replacement (nullptr
/// for void calls).
class Rewriter {
public:
  explicit Rewriter(Module &module)
      : module(module), i32(Type::getInt32Ty(module.getContext())),
        f32(Type::getFloatTy(module.getContext())),
        ptr(PointerType::getUnqual(module.getContext())) {}

  Error rewriteCalls();
  Expected<RewrittenModule> finish();

private:
  Expected<Value *> lowerIntrinsic(CallInst *call, StringRef name);
  Expected<Value *> lowerMma(CallInst *call, unsigned k);
  Expected<Value *> lowerAsm(CallInst *call, InlineAsm *inlineAsm);
  /// A read of PTX special register %`name` (tid.x, ctaid.y, ...).
  Expected<Value *> readSpecialRegister(IRBuilder<> &b, StringRef name);

  FunctionCallee abi(StringRef name, Type *result, ArrayRef<Type *> params) {
    return module.getOrInsertFunction(
        name, FunctionType::get(result, params, /*isVarArg=*/false));
  }
  Value *constant(int64_t v) { return ConstantInt::get(i32, v); }
  /// An alloca of `count` x `type` at the start of the call's function, so
  /// that a call in a loop does not grow the stack.
  Value *entryAlloca(CallInst *call, Type *type, unsigned count) {
    Function *f = call->getFunction();
    IRBuilder<> b(&f->getEntryBlock(), f->getEntryBlock().begin());
    return b.CreateAlloca(ArrayType::get(type, count));
  }

  Module &module;
  Type *i32, *f32, *ptr;
};

Expected<Value *> Rewriter::lowerIntrinsic(CallInst *call, StringRef name) {
  IRBuilder<> b(call);
  auto args = [&](unsigned i) { return call->getArgOperand(i); };

  if (name.consume_front("llvm.nvvm.read.ptx.sreg."))
    return readSpecialRegister(b, name);
  if (name == "llvm.nvvm.barrier0" ||
      name == "llvm.nvvm.barrier.cta.sync.aligned.all") {
    if (call->arg_size() == 1) {
      auto *id = dyn_cast<ConstantInt>(args(0));
      if (!id || !id->isZero())
        return unsupported("barrier other than barrier 0");
    }
    b.CreateCall(abi("__kvc_emu_barrier", b.getVoidTy(), {}));
    return nullptr;
  }
  if (name.consume_front("llvm.nvvm.shfl.sync.")) {
    auto [modeName, typeName] = name.split('.');
    int mode = StringSwitch<int>(modeName)
                   .Case("up", kShflUp).Case("down", kShflDown)
                   .Case("bfly", kShflBfly).Case("idx", kShflIdx)
                   .Default(-1);
    if (mode < 0 || (typeName != "i32" && typeName != "f32"))
      return unsupported("shfl.sync variant " + name);
    Value *value = args(1);
    if (typeName == "f32")
      value = b.CreateBitCast(value, i32);
    Value *result =
        b.CreateCall(abi("__kvc_emu_shfl", i32, {i32, i32, i32, i32, i32}),
                     {constant(mode), args(0), value, args(2), args(3)});
    return typeName == "f32" ? b.CreateBitCast(result, f32) : result;
  }
  if (name == "llvm.nvvm.mma.m16n8k16.row.col.f32.f32")
    return lowerMma(call, 16);
  if (name == "llvm.nvvm.mma.m16n8k8.row.col.f32.f32")
    return lowerMma(call, 8);
  // Prefetches into L2: the emulator checks and records them
  // (kvc::gpuemu::takePrefetches); the cache hint of the bulk form is
  // ignored.
  if (name == "llvm.nvvm.prefetch.global.L2" ||
      name == "llvm.nvvm.cp.async.bulk.prefetch.L2") {
    const bool bulk = name.contains(".bulk.");
    Value *address = b.CreateAddrSpaceCast(args(0), ptr);
    Value *bytes = bulk ? b.CreateZExt(args(1), b.getInt64Ty()) : b.getInt64(1);
    b.CreateCall(
        abi("__kvc_emu_prefetch", b.getVoidTy(), {ptr, b.getInt64Ty(), i32}),
        {address, bytes, constant(bulk)});
    return nullptr;
  }
  // Ampere's asynchronous copies into shared memory; the cache level (ca,
  // cg) does not matter here. The .s forms (zero-filled tails) are not
  // supported.
  const int copyBytes = StringSwitch<int>(name)
                            .Case("llvm.nvvm.cp.async.ca.shared.global.4", 4)
                            .Case("llvm.nvvm.cp.async.ca.shared.global.8", 8)
                            .Case("llvm.nvvm.cp.async.ca.shared.global.16", 16)
                            .Case("llvm.nvvm.cp.async.cg.shared.global.16", 16)
                            .Default(0);
  if (copyBytes) {
    b.CreateCall(abi("__kvc_emu_cp_async", b.getVoidTy(), {ptr, ptr, i32}),
                 {b.CreateAddrSpaceCast(args(0), ptr),
                  b.CreateAddrSpaceCast(args(1), ptr), constant(copyBytes)});
    return nullptr;
  }
  auto commit = [&] {
    b.CreateCall(abi("__kvc_emu_cp_async_commit", b.getVoidTy(), {}));
  };
  if (name == "llvm.nvvm.cp.async.commit.group") {
    commit();
    return nullptr;
  }
  if (name == "llvm.nvvm.cp.async.wait.group" ||
      name == "llvm.nvvm.cp.async.wait.all") {
    // wait_all is commit_group; wait_group 0 (PTX ISA).
    const bool all = name.ends_with(".all");
    if (all)
      commit();
    b.CreateCall(abi("__kvc_emu_cp_async_wait", b.getVoidTy(), {i32}),
                 {all ? constant(0) : args(0)});
    return nullptr;
  }
  if (name == "llvm.nvvm.bar.warp.sync") {
    b.CreateCall(abi("__kvc_emu_warp_sync", b.getVoidTy(), {i32}), {args(0)});
    return nullptr;
  }
  if (name == "llvm.nvvm.prmt")
    return b.CreateCall(abi("__kvc_emu_prmt", i32, {i32, i32, i32}),
                        {args(0), args(1), args(2)});
  if (name == "llvm.nvvm.fabs.f32" || name == "llvm.nvvm.fabs")
    return b.CreateUnaryIntrinsic(Intrinsic::fabs, args(0));
  if (name == "llvm.nvvm.saturate.f" || name == "llvm.nvvm.saturate.ftz.f")
    return b.CreateCall(abi("__kvc_emu_saturate", f32, {f32, i32}),
                        {args(0), constant(name.contains(".ftz"))});
  if (name.consume_front("llvm.nvvm.fma.")) {
    int rounding = StringSwitch<int>(name.take_front(2))
                       .Case("rn", kRoundNearest).Case("rz", kRoundZero)
                       .Case("rm", kRoundDown).Case("rp", kRoundUp)
                       .Default(-1);
    StringRef suffix = name.drop_front(2);
    if (rounding < 0 || (suffix != ".f" && suffix != ".ftz.f"))
      return unsupported("intrinsic llvm.nvvm.fma." + name);
    return b.CreateCall(
        abi("__kvc_emu_fma", f32, {i32, i32, f32, f32, f32}),
        {constant(rounding), constant(name.contains(".ftz")), args(0), args(1),
         args(2)});
  }
  if (name == "llvm.nvvm.ex2.approx.ftz.f32" ||
      name == "llvm.nvvm.ex2.approx.f32" || name == "llvm.nvvm.ex2.approx.f")
    return b.CreateCall(abi("__kvc_emu_ex2", f32, {f32, i32}),
                        {args(0), constant(name.contains(".ftz"))});
  return unsupported("intrinsic " + name);
}

Expected<Value *> Rewriter::lowerMma(CallInst *call, unsigned k) {
  const unsigned aRegs = k / 4, bRegs = k / 8;
  if (call->arg_size() != aRegs + bRegs + 4)
    return unsupported("mma.m16n8k" + Twine(k) + " with " +
                       Twine(call->arg_size()) + " operands");
  Type *pair = FixedVectorType::get(Type::getHalfTy(module.getContext()), 2);
  for (unsigned i = 0; i < aRegs + bRegs; ++i)
    if (call->getArgOperand(i)->getType() != pair)
      return unsupported("mma.m16n8k" + Twine(k) + " with A or B not f16x2");
  Value *a = entryAlloca(call, i32, aRegs), *bv = entryAlloca(call, i32, bRegs);
  Value *c = entryAlloca(call, f32, 4), *d = entryAlloca(call, f32, 4);
  IRBuilder<> b(call);
  for (unsigned i = 0; i < aRegs; ++i)
    b.CreateStore(b.CreateBitCast(call->getArgOperand(i), i32),
                  b.CreateConstGEP1_32(i32, a, i));
  for (unsigned i = 0; i < bRegs; ++i)
    b.CreateStore(b.CreateBitCast(call->getArgOperand(aRegs + i), i32),
                  b.CreateConstGEP1_32(i32, bv, i));
  for (unsigned i = 0; i < 4; ++i)
    b.CreateStore(call->getArgOperand(aRegs + bRegs + i),
                  b.CreateConstGEP1_32(f32, c, i));
  b.CreateCall(abi("__kvc_emu_mma_f16_f32", b.getVoidTy(),
                   {i32, ptr, ptr, ptr, ptr}),
               {constant(k), a, bv, c, d});
  Value *result = PoisonValue::get(call->getType());
  for (unsigned i = 0; i < 4; ++i)
    result = b.CreateInsertValue(
        result, b.CreateLoad(f32, b.CreateConstGEP1_32(f32, d, i)), i);
  return result;
}

Expected<Value *> Rewriter::readSpecialRegister(IRBuilder<> &b,
                                                StringRef name) {
  int reg = StringSwitch<int>(name)
                .Case("tid.x", kTidX)
                .Case("tid.y", kTidY)
                .Case("tid.z", kTidZ)
                .Case("ntid.x", kNtidX)
                .Case("ntid.y", kNtidY)
                .Case("ntid.z", kNtidZ)
                .Case("ctaid.x", kCtaidX)
                .Case("ctaid.y", kCtaidY)
                .Case("ctaid.z", kCtaidZ)
                .Case("nctaid.x", kNctaidX)
                .Case("nctaid.y", kNctaidY)
                .Case("nctaid.z", kNctaidZ)
                .Case("laneid", kLaneId)
                .Case("warpsize", kWarpSize)
                .Default(-1);
  if (reg < 0)
    return unsupported("special register %" + name);
  return b.CreateCall(abi("__kvc_emu_sreg", i32, {i32}), {constant(reg)});
}

Expected<Value *> Rewriter::lowerAsm(CallInst *call, InlineAsm *inlineAsm) {
  StringRef text = inlineAsm->getAsmString();
  IRBuilder<> b(call);
  SmallVector<StringRef> groups;
  // The instructions kvc's kernels spell in inline PTX.
  static const Regex lop3(
      "^[[:space:]]*lop3\\.b32[[:space:]]+\\$0,[[:space:]]*\\$1,[[:space:]]*"
      "\\$2,[[:space:]]*\\$3,[[:space:]]*(0x[0-9a-fA-F]+|[0-9]+)[[:space:]]*;?"
      "[[:space:]]*$");
  static const Regex rcp("^[[:space:]]*rcp\\.approx(\\.ftz)?\\.f32[[:space:]]+"
                         "\\$0,[[:space:]]*\\$1[[:space:]]*;?[[:space:]]*$");
  if (lop3.match(text, &groups) && call->arg_size() == 3 &&
      call->getType() == i32) {
    uint64_t lut = 0;
    if (StringRef(groups[1]).getAsInteger(0, lut) || lut > 0xff)
      return unsupported("lop3 table " + groups[1]);
    return b.CreateCall(abi("__kvc_emu_lop3", i32, {i32, i32, i32, i32}),
                        {call->getArgOperand(0), call->getArgOperand(1),
                         call->getArgOperand(2), constant(lut)});
  }
  // A special register read again (KernelBuilder::freshThreadId).
  static const Regex mov("^[[:space:]]*mov\\.u32[[:space:]]+\\$0,[[:space:]]*%"
                         "([a-z]+(\\.[xyz])?)[[:space:]]*;?[[:space:]]*$");
  if (mov.match(text, &groups) && call->arg_size() == 0 &&
      call->getType() == i32)
    return readSpecialRegister(b, groups[1]);
  if (rcp.match(text) && call->arg_size() == 1 && call->getType() == f32)
    return b.CreateFDiv(ConstantFP::get(f32, 1.0), call->getArgOperand(0));
  return unsupported("inline PTX \"" + text + "\"");
}

Error Rewriter::rewriteCalls() {
  SmallVector<CallInst *> calls;
  for (Function &f : module)
    for (BasicBlock &block : f)
      for (Instruction &inst : block)
        if (auto *call = dyn_cast<CallInst>(&inst)) {
          Function *callee = call->getCalledFunction();
          if (isa<InlineAsm>(call->getCalledOperand()) ||
              (callee && callee->getName().starts_with("llvm.nvvm.")))
            calls.push_back(call);
        }
  for (CallInst *call : calls) {
    Expected<Value *> replacement =
        isa<InlineAsm>(call->getCalledOperand())
            ? lowerAsm(call, cast<InlineAsm>(call->getCalledOperand()))
            : lowerIntrinsic(call, call->getCalledFunction()->getName());
    if (!replacement)
      return replacement.takeError();
    if (*replacement)
      call->replaceAllUsesWith(*replacement);
    call->eraseFromParent();
  }
  for (Function &f : make_early_inc_range(module))
    if (f.getName().starts_with("llvm.nvvm.") && f.use_empty())
      f.eraseFromParent();
  return Error::success();
}

Expected<RewrittenModule> Rewriter::finish() {
  RewrittenModule result;
  // Shared memory: one host global per variable, reused by every block (the
  // emulator runs one block at a time and poisons them before each).
  unsigned unnamed = 0;
  SmallVector<GlobalVariable *> sharedVariables;
  for (GlobalVariable &global : module.globals()) {
    if (global.getAddressSpace() != 3)
      continue;
    if (!global.hasName())
      global.setName("__kvc_emu_shared." + Twine(unnamed++));
    // Dynamic shared memory is an external declaration (`.extern .shared
    // ... name[]`). A zero-sized definition (what MLIR's lowering of
    // gpu.dynamic_shared_memory defines by default) the NVPTX backend turns
    // into a static variable that overlaps the others: an error here.
    if (!global.isDeclaration() &&
        module.getDataLayout().getTypeAllocSize(global.getValueType()).isZero())
      return unsupported("shared variable '" + global.getName() +
                         "' is a zero-sized definition, which the NVPTX "
                         "backend makes a static variable, not dynamic shared "
                         "memory (declare it external)");
    if (global.isDeclaration()) {
      result.shared.push_back({global.getName().str(), 0});
      continue;
    }
    sharedVariables.push_back(&global);
  }
  // Each variable placed at an odd multiple of its declared alignment (the
  // PTX .align), not more aligned by chance: a 16-byte access (cp.async,
  // ld.shared.v4) to a variable declared with less faults as on the GPU.
  for (GlobalVariable *global : sharedVariables) {
    const DataLayout &layout = module.getDataLayout();
    Type *type = global->getValueType();
    const uint64_t align =
        global->getAlign().value_or(layout.getABITypeAlign(type)).value();
    Type *padded = StructType::get(
        module.getContext(),
        {ArrayType::get(Type::getInt8Ty(module.getContext()), align), type});
    auto *placed = new GlobalVariable(
        module, padded, /*isConstant=*/false, GlobalValue::ExternalLinkage,
        PoisonValue::get(padded), global->getName() + ".placed", nullptr,
        GlobalValue::NotThreadLocal, global->getAddressSpace());
    placed->setAlignment(Align(2 * align));
    Constant *zero = ConstantInt::get(Type::getInt32Ty(module.getContext()), 0);
    Constant *one = ConstantInt::get(Type::getInt32Ty(module.getContext()), 1);
    Constant *variable = ConstantExpr::getInBoundsGetElementPtr(
        padded, placed, ArrayRef<Constant *>{zero, one});
    global->replaceAllUsesWith(variable);
    result.shared.push_back({placed->getName().str(),
                             layout.getTypeAllocSize(type).getFixedValue(),
                             align});
    global->eraseFromParent();
  }
  // libdevice functions left unlinked are their libm namesakes.
  for (Function &f : module)
    if (f.isDeclaration() && f.getName().starts_with("__nv_"))
      f.setName(f.getName().drop_front(5));

  SmallVector<Function *> kernels;
  for (Function &f : module)
    if (!f.isDeclaration() && f.getCallingConv() == CallingConv::PTX_Kernel)
      kernels.push_back(&f);
  LLVMContext &context = module.getContext();
  for (Function *kernel : kernels) {
    kernel->setCallingConv(CallingConv::C);
    result.kernels.push_back(kernel->getName().str());
    // void entry(void **params): cuLaunchKernel's argument array.
    Function *entry = Function::Create(
        FunctionType::get(Type::getVoidTy(context), {ptr}, false),
        GlobalValue::ExternalLinkage, entryName(kernel->getName().str()),
        module);
    IRBuilder<> b(BasicBlock::Create(context, "entry", entry));
    SmallVector<Value *> args;
    for (Argument &arg : kernel->args()) {
      Value *slot = b.CreateLoad(
          ptr, b.CreateConstGEP1_32(ptr, entry->getArg(0), arg.getArgNo()));
      args.push_back(b.CreateLoad(arg.getType(), slot));
    }
    b.CreateCall(kernel, args);
    b.CreateRetVoid();
  }
  if (kernels.empty())
    return unsupported("the module has no kernels");
  std::string problems;
  raw_string_ostream os(problems);
  if (verifyModule(module, &os))
    return unsupported("the rewritten module does not verify: " + problems);
  return result;
}

} // namespace

Expected<RewrittenModule> rewriteForHost(Module &module,
                                         const DataLayout &hostLayout,
                                         const std::string &hostTriple) {
  module.setDataLayout(hostLayout);
  module.setTargetTriple(Triple(hostTriple));
  Rewriter rewriter(module);
  if (Error error = rewriter.rewriteCalls())
    return std::move(error);
  return rewriter.finish();
}

} // namespace gpuemu
} // namespace kvc

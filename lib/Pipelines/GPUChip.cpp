//===- GPUChip.cpp - The NVIDIA chips kvc-gpu-pipeline compiles for -------===//

#include "GPUChip.h"

#include "mlir/Target/LLVM/NVVM/Utils.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/TargetParser/Triple.h"

#include <memory>

using namespace mlir;
using namespace mlir::kvc;

namespace {
/// LLVM's NVPTX subtarget without a processor: its tables of processors and
/// features.
const llvm::MCSubtargetInfo *nvptxTables(std::string &message) {
  static const std::unique_ptr<llvm::MCSubtargetInfo> tables = [] {
    NVVM::SerializeGPUModuleBase::init();
    llvm::Triple triple("nvptx64-nvidia-cuda");
    std::string error;
    const llvm::Target *target =
        llvm::TargetRegistry::lookupTarget(triple, error);
    return std::unique_ptr<llvm::MCSubtargetInfo>(
        target ? target->createMCSubtargetInfo(triple, "", "") : nullptr);
  }();
  if (!tables)
    message = "kvc-gpu-pipeline: this build of LLVM has no NVPTX backend";
  return tables.get();
}

/// The first PTX ISA version (times ten) with each target from sm_70 on
/// (the PTX ISA's target notes; LLVM's NVPTX backend aborts on an older
/// one); 0 for the others.
unsigned firstPTXVersion(StringRef chip) {
  return llvm::StringSwitch<unsigned>(chip)
      .Case("sm_70", 60)
      .Case("sm_72", 61)
      .Case("sm_75", 63)
      .Case("sm_80", 70)
      .Case("sm_86", 71)
      .Case("sm_87", 74)
      .Cases({"sm_89", "sm_90"}, 78)
      .Case("sm_90a", 80)
      .Cases({"sm_100", "sm_100a", "sm_101", "sm_101a"}, 86)
      .Cases({"sm_120", "sm_120a"}, 87)
      .Cases({"sm_100f", "sm_101f", "sm_103", "sm_103a", "sm_103f", "sm_120f",
              "sm_121", "sm_121a", "sm_121f"},
             88)
      .Cases({"sm_88", "sm_110", "sm_110a", "sm_110f"}, 90)
      .Default(0);
}

/// The most shared memory a block of an sm_<version> chip may opt into: the
/// largest shared-memory carveout of its SM (CUDA 13's cuda_occupancy.h,
/// cudaOccAlignUpShmemSizeVoltaPlus) less the 1 KB the driver reserves per
/// block from sm_80 on (the CUDA C++ Programming Guide's table of compute
/// capabilities); 0 for a chip it is not known for.
unsigned sharedMemoryLimit(unsigned smVersion) {
  switch (smVersion) {
  case 70:
  case 72:
    return 98304; // 96 KB, no reservation
  case 75:
    return 65536; // 64 KB
  case 80:
  case 87:
    return 166912; // 164 KB - 1 KB
  case 86:
  case 88:
  case 89:
  case 120:
  case 121:
    return 101376; // 100 KB - 1 KB
  case 90:
  case 100:
  case 101:
  case 103:
  case 110:
    return 232448; // 228 KB - 1 KB
  default:
    return 0;
  }
}
} // namespace

FailureOr<GPUChip> mlir::kvc::lookupGPUChip(StringRef name,
                                            std::string &message) {
  const llvm::MCSubtargetInfo *tables = nvptxTables(message);
  if (!tables)
    return failure();
  GPUChip chip;
  chip.name = name.str();
  StringRef version = name;
  if (!tables->isCPUStringValid(name) || !version.consume_front("sm_") ||
      version.take_while(llvm::isDigit).getAsInteger(10, chip.smVersion)) {
    message = ("kvc-gpu-pipeline: chip '" + name +
               "' is not a processor of LLVM's NVPTX backend (e.g. sm_80, "
               "sm_90a, sm_100a; `llc -march=nvptx64 -mcpu=help` lists them)")
                  .str();
    return failure();
  }
  chip.minimumPTX = firstPTXVersion(name);
  if (!chip.minimumPTX) {
    message = ("kvc-gpu-pipeline: chip '" + name +
               "' is older than the kernels' first, sm_70")
                  .str();
    return failure();
  }
  chip.sharedMemoryLimit = sharedMemoryLimit(chip.smVersion);
  return chip;
}

FailureOr<std::string> mlir::kvc::nvptxFeatures(StringRef features,
                                                unsigned minimumPTX,
                                                StringRef neededBy,
                                                std::string &message) {
  const llvm::MCSubtargetInfo *tables = nvptxTables(message);
  if (!tables)
    return failure();
  std::optional<unsigned> ptx;
  SmallVector<StringRef> items;
  if (!features.empty())
    features.split(items, ',');
  for (StringRef item : items) {
    StringRef feature = item.drop_front();
    bool known = (item.starts_with("+") || item.starts_with("-")) &&
                 llvm::any_of(tables->getAllProcessorFeatures(),
                              [&](const llvm::SubtargetFeatureKV &kv) {
                                return feature == kv.Key;
                              });
    if (!known) {
      message = ("kvc-gpu-pipeline: features item '" + item +
                 "' is not +name or -name of a feature of LLVM's NVPTX "
                 "backend (e.g. +ptx86; `llc -march=nvptx64 -mattr=help` "
                 "lists them)")
                    .str();
      return failure();
    }
    unsigned version;
    if (item.starts_with("+") && feature.consume_front("ptx") &&
        !feature.getAsInteger(10, version))
      ptx = std::max(ptx.value_or(0), version);
  }
  if (ptx && *ptx < minimumPTX) {
    message = llvm::formatv("kvc-gpu-pipeline: features='{0}' gives PTX "
                            "{1}.{2}, but {3} needs PTX {4}.{5} or later; use "
                            "+ptx{4}{5} or leave features out",
                            features, *ptx / 10, *ptx % 10, neededBy,
                            minimumPTX / 10, minimumPTX % 10)
                  .str();
    return failure();
  }
  if (ptx)
    return features.str();
  const unsigned version = std::max(80u, minimumPTX);
  return ((features.empty() ? "" : features + ",") + "+ptx" + Twine(version))
      .str();
}

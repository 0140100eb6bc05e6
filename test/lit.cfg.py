# -*- Python -*-
# lit configuration of the kvc test suite.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "KVC"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kvc_obj_root, "test")
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py",
                   "lit.site.cfg.py", "unittests", "Inputs"]

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%kvc_src_root", config.kvc_src_root))
config.substitutions.append(("%kvc_obj_root", config.kvc_obj_root))
# The project's venv interpreter (numpy, onnx, jax, the kvc module).
config.substitutions.append(("%python", config.kvc_python))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

# Tests that read ../shared/models are marked `REQUIRES: shared-models` and
# are reported unsupported (not failed) on a clone without it.
if config.kvc_shared_dir and os.path.isdir(
        os.path.join(config.kvc_shared_dir, "models")):
    config.available_features.add("shared-models")
    config.substitutions.append(("%shared_models",
                                 os.path.join(config.kvc_shared_dir, "models")))

llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
tool_dirs = [config.kvc_tools_dir, config.llvm_tools_dir]
tools = ["kvc-opt", "kvc-run", "kvc-translate"]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# The built Python package (kvc.compile, the runtime cache, the numerics):
# tests that drive compiled models from Python are marked `REQUIRES:
# kvc-python`.
python_packages = os.path.join(config.kvc_obj_root, "python_packages")
config.environment["PYTHONPATH"] = python_packages
import glob
if glob.glob(os.path.join(python_packages, "kvc", "_kvc*.so")):
    config.available_features.add("kvc-python")

# Tests that run JAX (to export fresh StableHLO and compute references) are
# marked `REQUIRES: jax`.
import subprocess
if getattr(config, "kvc_python", None) and subprocess.run(
        [config.kvc_python, "-c", "import jax"], capture_output=True).returncode == 0:
    config.available_features.add("jax")

# The GPU path's tests need the CUDA toolkit (no GPU): ptxas for cubins and
# the checks of scripts/ptxas_check.py, libdevice for math functions. They
# are marked `REQUIRES: cuda-toolkit`; CUDA_HOME points the NVVM target at it.
cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
if os.path.exists(os.path.join(cuda_home, "bin", "ptxas")):
    config.available_features.add("cuda-toolkit")
    config.environment["CUDA_HOME"] = cuda_home
    config.substitutions.append(("%ptxas", os.path.join(cuda_home, "bin", "ptxas")))
    config.substitutions.append(("%cuda_home", cuda_home))

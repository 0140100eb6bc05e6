//===- Module.cpp - the kvc Python extension module -----------------------===//

#include "Bindings.h"

PYBIND11_MODULE(_kvc, m) {
  m.doc() = "kvc: decoupled KV-cache compression (numerics, compiler "
            "pipelines, the CPU paged cache, the cost model)";
  kvc::python::bindNumerics(m);
  kvc::python::bindEviction(m);
  kvc::python::bindCompiler(m);
  kvc::python::bindRuntime(m);
  kvc::python::bindCostModel(m);
  kvc::python::bindExecution(m);
}

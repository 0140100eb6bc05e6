//===- Bindings.h - pieces of the kvc Python module -------------*- C++ -*-===//

#ifndef KVC_PYTHON_BINDINGS_H
#define KVC_PYTHON_BINDINGS_H

#include "kvc/Numerics/Encoding.h"

#include <pybind11/pybind11.h>

#include <string>

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace kvc::python {

/// Every upstream dialect and extension, and kvc's.
mlir::DialectRegistry &dialectRegistry();

/// Parses a side spec of the spec language (`q2:channel:g32`, `fp8:e4m3`,
/// `fp16`) into the numerics form; raises ValueError with the parser's
/// message.
::kvc::numerics::SideEncoding parseSide(const std::string &spec);

void bindNumerics(pybind11::module_ &m);
void bindEviction(pybind11::module_ &m);
void bindCompiler(pybind11::module_ &m);
void bindRuntime(pybind11::module_ &m);
void bindCostModel(pybind11::module_ &m);
void bindExecution(pybind11::module_ &m);

} // namespace kvc::python

#endif // KVC_PYTHON_BINDINGS_H

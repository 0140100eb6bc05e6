//===- Check.h - Always-on precondition checks ------------------*- C++ -*-===//
//
// Internal. The numerics library is used from the runtime (built without
// exceptions) and from MLIR folders, which validate their inputs first with the
// validate*() functions. A violated precondition here is a caller bug that
// would otherwise corrupt memory, so it aborts with a message in every build.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_NUMERICS_CHECK_H
#define KVC_LIB_NUMERICS_CHECK_H

#include <cstdio>
#include <cstdlib>

#define KVC_NUMERICS_CHECK(cond, msg)                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "kvc numerics: precondition failed: %s (%s:%d)\n",  \
                   msg, __FILE__, __LINE__);                                   \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

#endif // KVC_LIB_NUMERICS_CHECK_H

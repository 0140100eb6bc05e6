//===- Status.cpp - Status names and internal assertions ------------------===//

#include "Status.h"

#include <cstdio>
#include <cstdlib>

namespace kvc {
namespace rt {

void fatalInternal(const char *message, const char *file, int line) {
  std::fprintf(stderr, "kvc runtime: internal error: %s (%s:%d)\n", message,
               file, line);
  std::abort();
}

} // namespace rt
} // namespace kvc

extern "C" const char *kvc_rt_status_name(kvc_rt_status status) {
  switch (status) {
  case KVC_RT_OK:
    return "KVC_RT_OK";
  case KVC_RT_ERROR_NULL_POINTER:
    return "KVC_RT_ERROR_NULL_POINTER";
  case KVC_RT_ERROR_INVALID_ARGUMENT:
    return "KVC_RT_ERROR_INVALID_ARGUMENT";
  case KVC_RT_ERROR_INVALID_HANDLE:
    return "KVC_RT_ERROR_INVALID_HANDLE";
  case KVC_RT_ERROR_INVALID_SEQUENCE:
    return "KVC_RT_ERROR_INVALID_SEQUENCE";
  case KVC_RT_ERROR_SHAPE_MISMATCH:
    return "KVC_RT_ERROR_SHAPE_MISMATCH";
  case KVC_RT_ERROR_ENCODING_MISMATCH:
    return "KVC_RT_ERROR_ENCODING_MISMATCH";
  case KVC_RT_ERROR_CAPACITY_EXCEEDED:
    return "KVC_RT_ERROR_CAPACITY_EXCEEDED";
  case KVC_RT_ERROR_OUT_OF_MEMORY:
    return "KVC_RT_ERROR_OUT_OF_MEMORY";
  case KVC_RT_ERROR_UNSUPPORTED:
    return "KVC_RT_ERROR_UNSUPPORTED";
  case KVC_RT_ERROR_BACKEND:
    return "KVC_RT_ERROR_BACKEND";
  case KVC_RT_ERROR_INTERNAL:
    return "KVC_RT_ERROR_INTERNAL";
  }
  return "KVC_RT_UNKNOWN_STATUS";
}

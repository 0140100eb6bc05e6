//===- Status.h - Status codes with messages --------------------*- C++ -*-===//
//
// The runtime is built without exceptions: every internal operation that can
// fail returns a Status (a kvc_rt_status and a message), which the C API
// hands to the caller and records as the thread's / cache's last error.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_LIB_STATUS_H
#define KVC_RUNTIME_LIB_STATUS_H

#include "kvc_runtime.h"

#include <string>

namespace kvc {
namespace rt {

class Status {
public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(kvc_rt_status code, std::string message) {
    Status s;
    s.code_ = code;
    s.message_ = std::move(message);
    return s;
  }

  bool isOk() const { return code_ == KVC_RT_OK; }
  kvc_rt_status code() const { return code_; }
  const std::string &message() const { return message_; }

private:
  kvc_rt_status code_ = KVC_RT_OK;
  std::string message_;
};

/// Short-hand constructors, one per failure class.
inline Status nullPointer(const char *what) {
  return Status::error(KVC_RT_ERROR_NULL_POINTER,
                       std::string(what) + " must not be NULL");
}
inline Status invalidArgument(std::string message) {
  return Status::error(KVC_RT_ERROR_INVALID_ARGUMENT, std::move(message));
}

/// Propagates a failed Status out of the enclosing function.
#define KVC_RT_RETURN_IF_ERROR(expr)                                           \
  do {                                                                         \
    ::kvc::rt::Status kvcRtStatus_ = (expr);                                   \
    if (!kvcRtStatus_.isOk())                                                  \
      return kvcRtStatus_;                                                     \
  } while (0)

/// A violated internal invariant is a runtime bug: abort with a message in
/// every build type rather than corrupt caller memory.
[[noreturn]] void fatalInternal(const char *message, const char *file,
                                int line);
#define KVC_RT_ASSERT(cond, msg)                                               \
  do {                                                                         \
    if (!(cond))                                                               \
      ::kvc::rt::fatalInternal(msg, __FILE__, __LINE__);                       \
  } while (0)

} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_LIB_STATUS_H

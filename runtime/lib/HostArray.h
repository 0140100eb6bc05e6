//===- HostArray.h - Fixed-size host arrays that report OOM -----*- C++ -*-===//
//
// The runtime is built without exceptions, so std::vector cannot report a
// failed allocation. Everything sized by the user's configuration (page
// tables, reference counts, free lists) is a HostArray, whose allocation
// failure becomes KVC_RT_ERROR_OUT_OF_MEMORY instead of an abort.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_LIB_HOSTARRAY_H
#define KVC_RUNTIME_LIB_HOSTARRAY_H

#include <cstddef>
#include <cstdlib>
#include <type_traits>
#include <utility>

namespace kvc {
namespace rt {

template <typename T> class HostArray {
  static_assert(std::is_trivially_copyable<T>::value,
                "HostArray holds plain data only");

public:
  HostArray() = default;
  HostArray(const HostArray &) = delete;
  HostArray &operator=(const HostArray &) = delete;
  HostArray(HostArray &&o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  HostArray &operator=(HostArray &&o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~HostArray() { std::free(data_); }

  /// Allocates `n` elements, each set to `fill`; false if out of memory.
  bool allocate(size_t n, T fill) {
    T *p = static_cast<T *>(std::malloc(n ? n * sizeof(T) : 1));
    if (!p)
      return false;
    for (size_t i = 0; i < n; ++i)
      p[i] = fill;
    std::free(data_);
    data_ = p;
    size_ = n;
    return true;
  }

  T *data() { return data_; }
  const T *data() const { return data_; }
  size_t size() const { return size_; }
  T &operator[](size_t i) { return data_[i]; }
  const T &operator[](size_t i) const { return data_[i]; }

private:
  T *data_ = nullptr;
  size_t size_ = 0;
};

} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_LIB_HOSTARRAY_H

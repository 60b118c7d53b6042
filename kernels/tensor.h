// Tensor: a plain, non-owning view (pointer, dtype, shape) over memory a Backend owns
// (docs/design.md §2). Views are always dense and row-major; the last dimension is contiguous.
// A view never frees anything: Buffer (below) owns memory and gives out views.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/error.h"

namespace smol {

// F64 holds only device scalars that must keep double precision (the squared global grad norm
// and the clip state of AdamW, docs/design.md §4); no op computes on F64 tensors otherwise.
enum class DType : uint8_t { F32, BF16, I32, F64 };

inline size_t dtype_size(DType t) {
  return t == DType::BF16 ? 2 : t == DType::F64 ? 8 : 4;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
    case DType::F64:
      return "F64";
  }
  return "?";
}

constexpr int kMaxDims = 4;

struct Shape {
  std::array<int64_t, kMaxDims> dims{1, 1, 1, 1};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    SMOL_CHECK(d.size() <= kMaxDims, "tensor rank ", d.size(), " exceeds ", kMaxDims);
    for (int64_t v : d) dims[rank++] = v;
  }
  int64_t operator[](int i) const { return dims[i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  // Rows when viewed as a matrix [rows, last dim].
  int64_t rows() const { return rank == 0 ? 1 : numel() / dims[rank - 1]; }
  int64_t cols() const { return rank == 0 ? 1 : dims[rank - 1]; }
  bool operator==(const Shape& o) const {
    if (rank != o.rank) return false;
    for (int i = 0; i < rank; ++i)
      if (dims[i] != o.dims[i]) return false;
    return true;
  }
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
  }
};

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Shape shape;

  int64_t numel() const { return shape.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }

  // Rows [begin, begin+count) of the tensor viewed as [rows, cols]: still dense.
  Tensor rows(int64_t begin, int64_t count) const {
    SMOL_CHECK(begin >= 0 && count >= 0 && begin + count <= shape.rows(), "row range [", begin,
               ", ", begin + count, ") outside tensor ", shape.str());
    Tensor t = *this;
    t.data = static_cast<char*>(data) + begin * shape.cols() * dtype_size(dtype);
    t.shape = Shape{count, shape.cols()};
    return t;
  }
  // Elements [begin, begin+count) in row-major order, as a 1-D view (ZeRO-1 shards, flat arenas).
  Tensor elements(int64_t begin, int64_t count) const {
    SMOL_CHECK(begin >= 0 && count >= 0 && begin + count <= numel(), "element range [", begin, ", ",
               begin + count, ") outside tensor ", shape.str());
    Tensor t = *this;
    t.data = static_cast<char*>(data) + begin * static_cast<int64_t>(dtype_size(dtype));
    t.shape = Shape{count};
    return t;
  }
  Tensor reshaped(Shape s) const {
    SMOL_CHECK(s.numel() == numel(), "cannot reshape ", shape.str(), " to ", s.str());
    Tensor t = *this;
    t.shape = s;
    return t;
  }
};

}  // namespace smol

#include "kernels/backend.h"

namespace smol {

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    if (backend_ && data_) backend_->release(data_);
    backend_ = o.backend_;
    data_ = o.data_;
    bytes_ = o.bytes_;
    o.backend_ = nullptr;
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

Buffer::~Buffer() {
  if (backend_ && data_) backend_->release(data_);
}

Tensor Buffer::view(DType dtype, Shape shape, size_t byte_offset) const {
  const size_t need = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  SMOL_CHECK(byte_offset + need <= bytes_, "view ", shape.str(), " ", dtype_name(dtype), " at +",
             byte_offset, " exceeds a buffer of ", bytes_, " bytes");
  return Tensor{static_cast<char*>(data_) + byte_offset, dtype, shape};
}

}  // namespace smol

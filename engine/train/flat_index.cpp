// Flat arena layout (see flat_index.h).
#include "engine/train/flat_index.h"

#include "common/error.h"

namespace smol {

FlatIndex::FlatIndex(const std::vector<std::string>& names, const std::vector<Shape>& shapes) {
  SMOL_CHECK(names.size() == shapes.size(), "FlatIndex: ", names.size(), " names for ",
             shapes.size(), " shapes");
  for (size_t i = 0; i < names.size(); ++i) {
    entries_.push_back(FlatEntry{names[i], size_, shapes[i]});
    const int64_t n = shapes[i].numel();
    size_ += (n + kAlignment - 1) / kAlignment * kAlignment;
  }
}

const FlatEntry& FlatIndex::find(const std::string& name) const {
  for (const FlatEntry& e : entries_)
    if (e.name == name) return e;
  throw_error("no trainable tensor named '", name, "'");
}

Tensor FlatIndex::view(const Tensor& arena, size_t i) const {
  SMOL_CHECK(i < entries_.size(), "FlatIndex: entry ", i, " of ", entries_.size());
  SMOL_CHECK(arena.dtype == DType::F32 && arena.numel() == size_, "FlatIndex: the arena has ",
             arena.numel(), " elements, the layout ", size_);
  Tensor t = arena;
  t.data = static_cast<float*>(arena.data) + entries_[i].offset;
  t.shape = entries_[i].shape;
  return t;
}

}  // namespace smol

// FlatIndex: where each trainable tensor sits in a flat F32 arena (docs/design.md §4, §8).
//
// The optimizer keeps its AdamW moments m and v as two flat arenas laid out by this index, in
// the model's trainable-parameter order; each tensor starts at a multiple of kAlignment
// elements (256 bytes: every 16-byte vector access of the cuda kernels stays aligned; the gaps
// hold zeros). A checkpoint stores tensors by name, so the layout may change between versions;
// data parallelism all-reduces one flat buffer and ZeRO-1 shards it by offset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/tensor.h"

namespace smol {

struct FlatEntry {
  std::string name;
  int64_t offset = 0;  // in elements
  Shape shape;
};

class FlatIndex {
 public:
  static constexpr int64_t kAlignment = 64;  // elements (F32: 256 bytes)

  FlatIndex() = default;
  // Lays out `names` with `shapes` in order.
  FlatIndex(const std::vector<std::string>& names, const std::vector<Shape>& shapes);

  const std::vector<FlatEntry>& entries() const { return entries_; }
  int64_t size() const { return size_; }  // elements, gaps included
  // The entry named `name`; throws naming it when absent.
  const FlatEntry& find(const std::string& name) const;
  // A view of entry `i` inside `arena` (a flat F32 tensor of size() elements).
  Tensor view(const Tensor& arena, size_t i) const;

 private:
  std::vector<FlatEntry> entries_;
  int64_t size_ = 0;
};

}  // namespace smol

// The device copy of an AttentionLayout (kernels/backend.h) that the attention kernels read:
// the per-sequence spans, row → sequence maps (simple kernels), and the work lists of the flash
// kernels (docs/design.md §2.5): query tiles and key tiles of kFlashTileRows rows, and the
// split-K pieces of the decode kernel. Built and uploaded once per layout by attention.cu
// (cached in GpuContext, so every layer of a step reuses it); flash_attention.cu launches over it.
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_compat.h"

namespace smol::SMOL_GPU_NS {

// Rows (queries or keys) per flash tile: 4 warps × 16 rows of the m16n8k16 tile.
inline constexpr int kFlashTileRows = 64;
// Keys per split of the decode kernel (two key tiles): enough splits for long caches to fill
// the GPU, few enough that the combine stays cheap.
inline constexpr int kDecodeSplitKeys = 128;
// The decode kernel packs a sequence's q_len queries × the group's query heads into the 16
// rows of one mma tile; layouts with more rows per kv head take the tiled forward.
inline constexpr int kDecodeMaxRows = 16;

struct AttentionSpan {
  int q_begin, q_len, k_begin, k_len;
};
// A tile of a sequence: rows [start, start + kFlashTileRows) of its queries or keys (sequence-
// relative), or for the decode kernel the keys [start, start + kDecodeSplitKeys).
struct AttentionTile {
  int seq, start;
};
// The decode splits of sequence s are decode_splits[first, first + count).
struct SplitRange {
  int first, count;
};

struct DeviceAttentionLayout {
  const int* query_seq = nullptr;        // [Tq] sequence of each query row, −1 outside the layout
  const int* key_seq = nullptr;          // [Tk]
  const AttentionSpan* spans = nullptr;  // [S]
  const AttentionTile* query_tiles = nullptr;  // heaviest (most keys) first
  const AttentionTile* key_tiles = nullptr;
  const AttentionTile* decode_splits = nullptr;
  const SplitRange* split_ranges = nullptr;  // [S]
  int sequences = 0, query_tile_count = 0, key_tile_count = 0, decode_split_count = 0;
  int max_q_len = 0, max_k_len = 0;
  bool covers_all_queries = false, covers_all_keys = false;
};

}  // namespace smol::SMOL_GPU_NS

// RopeTable: the cos/sin of every RoPE angle by position, kept by the cpu backend so that a step
// takes each angle's trigonometry once instead of once per call (q and k, forward and backward,
// every layer: 4 · layers calls per step at the same positions). The values are those
// cpu_rope.cpp would compute on the spot — the same float32 angle float(position) · inv_freq[i]
// and the correctly rounded float cos/sin of it (docs/formats.md §2) — so results are
// bit-identical with or without the table.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace smol::cpu {

class RopeTable {
 public:
  // The largest position the table holds (2 · 32 floats per position at head_dim 64: 64 MB at
  // this bound). Beyond it rope computes angles on the spot.
  static constexpr int64_t kMaxPositions = 1 << 17;

  // Makes rows [0, positions) valid for (theta, head_dim); rows already computed are kept.
  void prepare(float theta, int64_t head_dim, int64_t positions) {
    if (theta != theta_ || head_dim != head_dim_) {
      theta_ = theta;
      head_dim_ = head_dim;
      rows_ = 0;
      cos_.clear();
      sin_.clear();
      inv_freq_.assign(static_cast<size_t>(head_dim / 2), 0.0f);
      for (int64_t i = 0; i < head_dim / 2; ++i) {
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
        inv_freq_[static_cast<size_t>(i)] = 1.0f / std::pow(theta, exponent);
      }
    }
    if (positions <= rows_) return;
    const int64_t half = head_dim / 2;
    cos_.resize(static_cast<size_t>(positions * half));
    sin_.resize(static_cast<size_t>(positions * half));
#pragma omp parallel for schedule(static) if ((positions - rows_) * half > 4096)
    for (int64_t p = rows_; p < positions; ++p) {
      for (int64_t i = 0; i < half; ++i) {
        const float angle = static_cast<float>(p) * inv_freq_[static_cast<size_t>(i)];
        cos_[static_cast<size_t>(p * half + i)] =
            static_cast<float>(std::cos(static_cast<double>(angle)));
        sin_[static_cast<size_t>(p * half + i)] =
            static_cast<float>(std::sin(static_cast<double>(angle)));
      }
    }
    rows_ = positions;
  }

  const float* cos_row(int32_t position) const {
    return cos_.data() + position * head_dim_ / 2;
  }
  const float* sin_row(int32_t position) const {
    return sin_.data() + position * head_dim_ / 2;
  }

 private:
  float theta_ = 0.0f;
  int64_t head_dim_ = 0;
  int64_t rows_ = 0;
  std::vector<float> inv_freq_, cos_, sin_;
};

}  // namespace smol::cpu

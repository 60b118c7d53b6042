// LoraLinear forward and backward over backend matmuls (see lora_linear.h for the math).
#include "model/lora_linear.h"

namespace smol {

namespace {

// drop(x) into scratch, or x itself when dropout is off (no copy).
Tensor dropped_input(Backend& backend, const LoraLinear& layer, const Tensor& x,
                     LoraScratch& scratch, bool apply_dropout, uint64_t seed) {
  if (!apply_dropout || layer.dropout <= 0.0f) return x;
  Tensor dropped{scratch.dropped.data, scratch.dropped.dtype,
                 Shape{x.shape.rows(), x.shape.cols()}};
  backend.dropout(dropped, x, layer.dropout, seed);
  return dropped;
}

}  // namespace

void linear_base_forward(Backend& backend, const LoraLinear& layer, Tensor y, const Tensor& x,
                         const Tensor& addend) {
  if (layer.quantized()) {
    backend.matmul_quantized(y, x, layer.quant);
    if (addend.data) backend.axpy(y, addend, 1.0f);  // fp32 only (cpu): the same sum
  } else if (addend.data) {
    backend.matmul(y, x, layer.weight, Transpose::No, Transpose::Yes, 1.0f, 1.0f, addend);
  } else {
    backend.matmul(y, x, layer.weight, Transpose::No, Transpose::Yes);
  }
}

void lora_linear_forward(Backend& backend, const LoraLinear& layer, Tensor y, const Tensor& x,
                         Tensor lora_low, LoraScratch& scratch, bool apply_dropout,
                         uint64_t dropout_seed, const Tensor& addend) {
  linear_base_forward(backend, layer, y, x, addend);
  lora_adapter_forward(backend, layer, y, x, lora_low, scratch, apply_dropout, dropout_seed);
}

void lora_adapter_forward(Backend& backend, const LoraLinear& layer, Tensor y, const Tensor& x,
                          Tensor lora_low, LoraScratch& scratch, bool apply_dropout,
                          uint64_t dropout_seed) {
  if (!layer.has_lora()) return;
  const Tensor input = dropped_input(backend, layer, x, scratch, apply_dropout, dropout_seed);
  backend.matmul(lora_low, input, layer.lora_A, Transpose::No, Transpose::Yes);  // u = drop(x)·Aᵀ
  backend.matmul(y, lora_low, layer.lora_B, Transpose::No, Transpose::Yes, layer.scaling, 1.0f);
}

void lora_linear_backward(Backend& backend, const LoraLinear& layer, Tensor dx, bool accumulate_dx,
                          const Tensor& dy, const Tensor& x, const Tensor& lora_low,
                          LoraScratch& scratch, bool apply_dropout, uint64_t dropout_seed,
                          bool weight_grad_done) {
  SMOL_CHECK(!layer.quantized(), "LoRA backward: the base weight is held quantised (inference ",
             "only); training needs model.weights_in_memory: fp32");
  if (layer.weight_grad.data && !weight_grad_done)
    backend.matmul(layer.weight_grad, dy, x, Transpose::Yes, Transpose::No, 1.0f, 1.0f);
  if (dx.data)
    backend.matmul(dx, dy, layer.weight, Transpose::No, Transpose::No, 1.0f,
                   accumulate_dx ? 1.0f : 0.0f);
  if (!layer.has_lora()) return;
  const int64_t T = dy.shape.rows();
  const float s = layer.scaling;
  // dB += s·dyᵀ·u
  backend.matmul(layer.lora_B_grad, dy, lora_low, Transpose::Yes, Transpose::No, s, 1.0f);
  // g = dy·B [T, r]
  Tensor g{scratch.low.data, scratch.low.dtype, Shape{T, layer.rank()}};
  backend.matmul(g, dy, layer.lora_B, Transpose::No, Transpose::No);
  // dA += s·gᵀ·drop(x): the mask is redrawn from the same seed rather than stored.
  const Tensor input = dropped_input(backend, layer, x, scratch, apply_dropout, dropout_seed);
  backend.matmul(layer.lora_A_grad, g, input, Transpose::Yes, Transpose::No, s, 1.0f);
  if (!dx.data) return;
  if (!apply_dropout || layer.dropout <= 0.0f) {
    backend.matmul(dx, g, layer.lora_A, Transpose::No, Transpose::No, s, 1.0f);
  } else {
    // dx += s·drop'(g·A): dropout is linear with the same mask, so drop' = drop.
    Tensor dx_lora{scratch.dropped.data, scratch.dropped.dtype, Shape{T, layer.in_features()}};
    backend.matmul(dx_lora, g, layer.lora_A, Transpose::No, Transpose::No);
    backend.dropout(dx_lora, dx_lora, layer.dropout, dropout_seed);
    backend.axpy(dx, dx_lora, s);
  }
}

}  // namespace smol

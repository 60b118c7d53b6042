// TimingBackend: one forwarding method per op, each timed under the op's name.
#include "timing_backend.h"

namespace smol {

Buffer TimingBackend::allocate(size_t bytes) {
  // The inner backend allocates; the Buffer must release through it, not through this wrapper.
  return inner_.allocate(bytes);
}
void TimingBackend::upload(Tensor dst, const void* host) {
  timed("upload/download", [&] { inner_.upload(dst, host); });
}
void TimingBackend::download(void* host, const Tensor& src) {
  timed("upload/download", [&] { inner_.download(host, src); });
}
void TimingBackend::fill_zero(Tensor t) {
  timed("fill/copy/axpy", [&] { inner_.fill_zero(t); });
}
void TimingBackend::copy(Tensor dst, const Tensor& src) {
  timed("fill/copy/axpy", [&] { inner_.copy(dst, src); });
}
void TimingBackend::matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
                           float alpha, float beta) {
  timed("matmul", [&] { inner_.matmul(c, a, b, ta, tb, alpha, beta); });
}
void TimingBackend::axpy(Tensor y, const Tensor& x, float alpha) {
  timed("fill/copy/axpy", [&] { inner_.axpy(y, x, alpha); });
}
void TimingBackend::scale(Tensor x, float alpha) {
  timed("fill/copy/axpy", [&] { inner_.scale(x, alpha); });
}
void TimingBackend::embedding_forward(Tensor out, const Tensor& ids, const Tensor& table) {
  timed("embedding", [&] { inner_.embedding_forward(out, ids, table); });
}
void TimingBackend::embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids) {
  timed("embedding", [&] { inner_.embedding_backward(dtable, dout, ids); });
}
void TimingBackend::rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight,
                                    float eps) {
  timed("rmsnorm", [&] { inner_.rmsnorm_forward(out, rstd, x, weight, eps); });
}
void TimingBackend::add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                                        const Tensor& b, const Tensor& weight, float eps) {
  timed("rmsnorm", [&] { inner_.add_rmsnorm_forward(sum, out, rstd, a, b, weight, eps); });
}
void TimingBackend::rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                                     const Tensor& weight, const Tensor& rstd) {
  timed("rmsnorm", [&] { inner_.rmsnorm_backward(dx, dweight, dout, x, weight, rstd); });
}
void TimingBackend::rope_forward(Tensor x, const Tensor& positions, float theta) {
  timed("rope", [&] { inner_.rope_forward(x, positions, theta); });
}
void TimingBackend::rope_backward(Tensor dx, const Tensor& positions, float theta) {
  timed("rope", [&] { inner_.rope_backward(dx, positions, theta); });
}
void TimingBackend::attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k,
                                      const Tensor& v, const AttentionLayout& layout, float scale) {
  timed("attention", [&] { inner_.attention_forward(out, lse, q, k, v, layout, scale); });
}
void TimingBackend::attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                                       const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& out, const Tensor& lse,
                                       const AttentionLayout& layout, float scale) {
  timed("attention",
        [&] { inner_.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, layout, scale); });
}
void TimingBackend::swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) {
  timed("swiglu", [&] { inner_.swiglu_forward(out, gate, up); });
}
void TimingBackend::swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout,
                                    const Tensor& gate, const Tensor& up) {
  timed("swiglu", [&] { inner_.swiglu_backward(dgate, dup, dout, gate, up); });
}
void TimingBackend::cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits,
                                  const Tensor& targets, float dloss_scale) {
  timed("cross_entropy",
        [&] { inner_.cross_entropy(losses, dlogits, logits, targets, dloss_scale); });
}
void TimingBackend::argmax(Tensor out, const Tensor& x) {
  timed("argmax", [&] { inner_.argmax(out, x); });
}
void TimingBackend::dropout(Tensor out, const Tensor& in, float p, uint64_t seed) {
  timed("dropout", [&] { inner_.dropout(out, in, p, seed); });
}
double TimingBackend::sum_of_squares(std::span<const Tensor> tensors) {
  return timed("optimizer", [&] { return inner_.sum_of_squares(tensors); });
}
void TimingBackend::adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper) {
  timed("optimizer", [&] { inner_.adamw_step(tensors, hyper); });
}

}  // namespace smol

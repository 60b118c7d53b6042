// TimingBackend: forwards every op to another backend and adds its wall time (after a
// synchronize) to a per-op total, so a benchmark can report where a step's time goes.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "kernels/backend.h"

namespace smol {

class TimingBackend : public Backend {
 public:
  explicit TimingBackend(Backend& inner) : inner_(inner) {}
  std::map<std::string, double> seconds;  // op name → total wall seconds
  void clear() { seconds.clear(); }

  std::string name() const override { return inner_.name() + "+timing"; }
  DType activation_dtype() const override { return inner_.activation_dtype(); }
  Buffer allocate(size_t bytes) override;
  void release(void* data) override { inner_.release(data); }
  void upload(Tensor dst, const void* host) override;
  void download(void* host, const Tensor& src) override;
  void synchronize() override { inner_.synchronize(); }
  void fill_zero(Tensor t) override;
  void copy(Tensor dst, const Tensor& src) override;
  void matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb, float alpha,
              float beta) override;
  void axpy(Tensor y, const Tensor& x, float alpha) override;
  void scale(Tensor x, float alpha) override;
  void embedding_forward(Tensor out, const Tensor& ids, const Tensor& table) override;
  void embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids) override;
  void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight,
                       float eps) override;
  void add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a, const Tensor& b,
                           const Tensor& weight, float eps) override;
  void rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                        const Tensor& weight, const Tensor& rstd) override;
  void rope_forward(Tensor x, const Tensor& positions, float theta) override;
  void rope_backward(Tensor dx, const Tensor& positions, float theta) override;
  void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionLayout& layout, float scale) override;
  void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q,
                          const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const AttentionLayout& layout, float scale) override;
  void swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) override;
  void swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override;
  void cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                     float dloss_scale) override;
  void argmax(Tensor out, const Tensor& x) override;
  void dropout(Tensor out, const Tensor& in, float p, uint64_t seed) override;
  double sum_of_squares(std::span<const Tensor> tensors) override;
  void adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper) override;

 private:
  template <typename F>
  auto timed(const char* op, F&& f) {
    const auto start = std::chrono::steady_clock::now();
    struct Stop {
      TimingBackend* self;
      const char* op;
      std::chrono::steady_clock::time_point start;
      ~Stop() {
        self->inner_.synchronize();
        self->seconds[op] +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }
    } stop{this, op, start};
    return f();
  }
  Backend& inner_;
};

}  // namespace smol

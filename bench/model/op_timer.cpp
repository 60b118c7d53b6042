// OpTimer: per-category exclusive wall time of every backend op, through the OpHook.
#include "op_timer.h"

#include <cstring>

namespace smol {

namespace {

// The categories the benchmark table reports (several ops share one).
const char* category(const char* op) {
  static const std::pair<const char*, const char*> kCategories[] = {
      {"upload", "upload/download"},
      {"download", "upload/download"},
      {"fill_zero", "fill/copy/axpy"},
      {"copy", "fill/copy/axpy"},
      {"axpy", "fill/copy/axpy"},
      {"scale", "fill/copy/axpy"},
      {"matmul_batched", "matmul"},  // gate/up as one GEMM (docs/design.md §2.9)
      {"embedding_forward", "embedding"},
      {"embedding_backward", "embedding"},
      {"rmsnorm_forward", "rmsnorm"},
      {"add_rmsnorm_forward", "rmsnorm"},
      {"rmsnorm_backward", "rmsnorm"},
      {"rope_forward", "rope"},
      {"rope_backward", "rope"},
      {"rope_qk_forward", "rope"},
      {"rope_qk_backward", "rope"},
      {"attention_forward", "attention"},
      {"attention_backward", "attention"},
      {"swiglu_forward", "swiglu"},
      {"swiglu_backward", "swiglu"},
      {"sum_of_squares", "optimizer"},
      {"sum_of_squares_into", "optimizer"},
      {"adamw_step", "optimizer"},
      {"lm_head_cross_entropy", "lm_head (outside its matmuls, ce, argmax)"},
  };
  for (const auto& [name, cat] : kCategories)
    if (!std::strcmp(name, op)) return cat;
  return op;  // matmul, cross_entropy, argmax, dropout: their own category
}

}  // namespace

OpTimer::OpTimer(Backend& backend) : backend_(backend) {
  backend_.set_op_hook(this);
}

OpTimer::~OpTimer() {
  if (backend_.op_hook() == this) backend_.set_op_hook(nullptr);
}

void OpTimer::before_op(Backend&, const char*, int) {
  open_.push_back({std::chrono::steady_clock::now(), 0.0});
}

void OpTimer::after_op(Backend& backend, const char* op, int) {
  backend.synchronize();  // the op's device work is done: its time is real
  const Open o = open_.back();
  open_.pop_back();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - o.start).count();
  seconds[category(op)] += elapsed - o.nested_seconds;
  if (!open_.empty()) open_.back().nested_seconds += elapsed;
}

}  // namespace smol

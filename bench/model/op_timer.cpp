// OpTimer: per-category exclusive time of every backend op (wall clock or device events).
#include "op_timer.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

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
      // The LoRA products, fused on cuda (§2.7; the matmuls they replace on cpu): one category
      // on every backend, so breakdowns compare.
      {"lora_down_forward", "matmul"},
      {"lora_down_backward", "matmul"},
      {"lora_up_forward", "matmul"},
      {"lora_up_backward", "matmul"},
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
      {"attention_rope_backward", "attention"},  // with RoPE's backward fused (§2.7)
      {"rope_append_kv", "rope"},                // decode's RoPE + KV-cache append (§2.7)
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

OpTimer::OpTimer(Backend& backend, Clock clock) : backend_(backend), clock_(Clock::Wall) {
  if (clock == Clock::DeviceEvents) {
    // One probe event says whether the backend times on the device; it starts the pool.
    if (void* probe = backend_.record_timing_event(nullptr)) {
      clock_ = Clock::DeviceEvents;
      free_events_.push_back(probe);
    }
  }
  backend_.set_op_hook(this);
}

OpTimer::~OpTimer() {
  if (backend_.op_hook() == this) backend_.set_op_hook(nullptr);
  for (const Recorded& r : recorded_) {
    backend_.destroy_event(r.start);
    backend_.destroy_event(r.end);
  }
  for (void* event : free_events_) backend_.destroy_event(event);
}

void* OpTimer::take_event() {
  void* reuse = nullptr;
  if (!free_events_.empty()) {
    reuse = free_events_.back();
    free_events_.pop_back();
  }
  return backend_.record_timing_event(reuse);
}

void OpTimer::add(const char* op, double exclusive_seconds) {
  const char* cat = category(op);
  seconds[cat] += exclusive_seconds;
  ++calls[cat];
  op_seconds[op] += exclusive_seconds;
  ++op_calls[op];
}

void OpTimer::before_op(Backend&, const char* op, int) {
  if (clock_ == Clock::Wall) {
    open_.push_back({std::chrono::steady_clock::now(), 0.0});
    return;
  }
  Recorded r;
  r.op = op;
  r.parent = open_recorded_.empty() ? -1 : open_recorded_.back();
  r.start = take_event();
  open_recorded_.push_back(static_cast<int>(recorded_.size()));
  recorded_.push_back(std::move(r));
}

void OpTimer::after_op(Backend& backend, const char* op, int) {
  if (clock_ == Clock::DeviceEvents) {
    // No wait: the end event is queued behind the op's launches (finish() reads it).
    recorded_[open_recorded_.back()].end = take_event();
    open_recorded_.pop_back();
    return;
  }
  backend.synchronize();  // the op's device work is done: its time is real
  const Open o = open_.back();
  open_.pop_back();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - o.start).count();
  add(op, elapsed - o.nested_seconds);
  if (!open_.empty()) open_.back().nested_seconds += elapsed;
}

void OpTimer::finish() {
  if (clock_ == Clock::Wall || recorded_.empty()) return;
  SMOL_CHECK(open_recorded_.empty(), "OpTimer::finish: ", open_recorded_.size(),
             " op(s) still running (", recorded_[open_recorded_.back()].op, ")");
  backend_.synchronize();  // the one host wait: every recorded event has completed after it
  // Inclusive times first; a composite's exclusive time is its own minus its children's.
  std::vector<double> inclusive(recorded_.size()), nested(recorded_.size(), 0.0);
  for (size_t i = 0; i < recorded_.size(); ++i) {
    const Recorded& r = recorded_[i];
    inclusive[i] = backend_.elapsed_ms(r.start, r.end) / 1e3;
    if (r.parent >= 0) nested[r.parent] += inclusive[i];
  }
  for (size_t i = 0; i < recorded_.size(); ++i) {
    // Nested ops run inside their parent's pair on the same stream, so the difference is ≥ 0
    // up to the events' resolution (≈ 0.5 µs on CUDA, float milliseconds): clamp that away.
    add(recorded_[i].op.c_str(), std::max(0.0, inclusive[i] - nested[i]));
    free_events_.push_back(recorded_[i].start);
    free_events_.push_back(recorded_[i].end);
  }
  recorded_.clear();
}

void OpTimer::clear() {
  seconds.clear();
  calls.clear();
  op_seconds.clear();
  op_calls.clear();
  if (!open_recorded_.empty()) return;  // ops still running keep their events
  for (const Recorded& r : recorded_) {
    free_events_.push_back(r.start);
    free_events_.push_back(r.end);
  }
  recorded_.clear();
}

}  // namespace smol

// AdamW with global grad-norm clipping (see optimizer.h for the update).
#include "engine/optimizer.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace smol {

AdamW::AdamW(Backend& backend, std::vector<TrainableParam> params, AdamWSettings settings,
             const ZeroLayout* shard)
    : backend_(backend),
      params_(std::move(params)),
      settings_(std::move(settings)),
      sharded_(shard != nullptr) {
  SMOL_CHECK(!params_.empty(), "AdamW: the model has no trainable parameters");
  SMOL_CHECK(
      settings_.beta1 >= 0 && settings_.beta1 < 1 && settings_.beta2 >= 0 && settings_.beta2 < 1,
      "AdamW: betas (", settings_.beta1, ", ", settings_.beta2, ") must be in [0, 1)");
  SMOL_CHECK(settings_.eps > 0, "AdamW: eps = ", settings_.eps, " must be positive");
  SMOL_CHECK(settings_.weight_decay >= 0, "AdamW: weight_decay = ", settings_.weight_decay,
             " must be >= 0");
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  for (const TrainableParam& p : params_) {
    SMOL_CHECK(
        p.value.dtype == DType::F32 && p.grad.dtype == DType::F32 && p.value.shape == p.grad.shape,
        "AdamW: parameter ", p.name, " must be F32 with an F32 gradient of its shape");
    names.push_back(p.name);
    shapes.push_back(p.value.shape);
    double decay = settings_.weight_decay;
    for (const std::string& pattern : settings_.no_decay_substrings)
      if (p.name.find(pattern) != std::string::npos) decay = 0.0;
    decay_.push_back(decay);
  }
  index_ = FlatIndex(names, shapes);
  if (shard) pieces_ = shard->pieces();
  // One zero-filled allocation (Backend::allocate zero-fills) holds the m arena, then v.
  const int64_t arena_size = shard ? shard->shard_size() : index_.size();
  const size_t arena_bytes = static_cast<size_t>(arena_size) * sizeof(float);
  state_ = backend_.allocate(2 * arena_bytes);
  clip_buffer_ = backend_.allocate(3 * sizeof(double));  // zeros: no update skipped
  clip_state_ = clip_buffer_.view(DType::F64, Shape{3});
  m_flat_ = state_.view(DType::F32, Shape{arena_size}, 0);
  v_flat_ = state_.view(DType::F32, Shape{arena_size}, arena_bytes);
  if (sharded_) return;
  for (size_t i = 0; i < params_.size(); ++i) {
    m_.push_back(index_.view(m_flat_, i));
    v_.push_back(index_.view(v_flat_, i));
  }
}

Tensor AdamW::first_moment(size_t i) const {
  SMOL_CHECK(!sharded_, "AdamW: a ZeRO-1 shard holds no whole moment tensor");
  return m_.at(i);
}

Tensor AdamW::second_moment(size_t i) const {
  SMOL_CHECK(!sharded_, "AdamW: a ZeRO-1 shard holds no whole moment tensor");
  return v_.at(i);
}

void AdamW::load_moments(size_t i, const float* m, const float* v) {
  if (!sharded_) {
    backend_.upload(m_.at(i), m);
    backend_.upload(v_.at(i), v);
    return;
  }
  for (const ZeroPiece& piece : pieces_) {
    if (piece.param != i) continue;
    backend_.upload(m_flat_.elements(piece.shard_offset, piece.count), m + piece.begin);
    backend_.upload(v_flat_.elements(piece.shard_offset, piece.count), v + piece.begin);
  }
}

double AdamW::grad_norm() const {
  std::vector<Tensor> grads;
  grads.reserve(params_.size());
  for (const TrainableParam& p : params_) grads.push_back(p.grad);
  return std::sqrt(backend_.sum_of_squares(grads));
}

OptimizerStepStats AdamW::step(double lr, const Tensor& loss_check) {
  SMOL_CHECK(!sharded_, "AdamW: a ZeRO-1 shard updates through step_shard");
  std::vector<Tensor> grads;
  grads.reserve(params_.size());
  for (const TrainableParam& p : params_) grads.push_back(p.grad);
  backend_.sum_of_squares_into(clip_state_.elements(0, 1), grads);
  std::vector<AdamWTensor> tensors;
  tensors.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i)
    tensors.push_back(AdamWTensor{params_[i].value, params_[i].grad, m_[i], v_[i],
                                  static_cast<float>(decay_[i])});
  return update(lr, tensors, loss_check);
}

OptimizerStepStats AdamW::step_shard(double lr, const Tensor& gradient_shard, Communicator& comm,
                                     const Tensor& loss_check) {
  SMOL_CHECK(sharded_, "AdamW: step_shard needs a ZeRO-1 layout");
  SMOL_CHECK(gradient_shard.dtype == DType::F32 && gradient_shard.numel() == m_flat_.numel(),
             "AdamW: the gradient shard has ", gradient_shard.numel(), " elements, the moments ",
             m_flat_.numel());
  // The shards partition the gradient, so the ranks' Σ shard² add up to the global Σ grad².
  const Tensor norm2 = clip_state_.elements(0, 1);
  backend_.sum_of_squares_into(norm2, std::span<const Tensor>(&gradient_shard, 1));
  comm.all_reduce(norm2, ReduceOp::Sum);
  // Every piece is one tensor's run of elements: a flat view keeps the elementwise update exact.
  std::vector<AdamWTensor> tensors;
  tensors.reserve(pieces_.size());
  for (const ZeroPiece& p : pieces_)
    tensors.push_back(AdamWTensor{
        params_[p.param].value.elements(p.begin, p.count),
        gradient_shard.elements(p.shard_offset, p.count), m_flat_.elements(p.shard_offset, p.count),
        v_flat_.elements(p.shard_offset, p.count), static_cast<float>(decay_[p.param])});
  return update(lr, tensors, loss_check);
}

OptimizerStepStats AdamW::update(double lr, std::vector<AdamWTensor>& tensors,
                                 const Tensor& loss_check) {
  OptimizerStepStats stats;
  stats.lr = lr;
  stats.step = ++steps_done_;
  last_lr_ = lr;

  AdamWHyper hyper;
  hyper.lr = static_cast<float>(lr);
  hyper.beta1 = static_cast<float>(settings_.beta1);
  hyper.beta2 = static_cast<float>(settings_.beta2);
  hyper.eps = static_cast<float>(settings_.eps);
  hyper.step = stats.step;
  // The clip factor and the non-finite check happen on the device (see optimizer.h).
  hyper.clip_state = clip_state_;
  hyper.max_grad_norm = settings_.max_grad_norm;
  hyper.loss_check = loss_check;
  backend_.adamw_step(tensors, hyper);
  return stats;
}

void throw_if_update_skipped(const OptimizerStepStats& stats, int64_t max_steps,
                             int64_t noticed_after) {
  if (stats.first_skipped_step <= 0) return;
  // A finite Σ grad² in the record: the loss check skipped it (AdamWHyper::loss_check).
  if (std::isfinite(stats.first_skipped_grad_norm))
    throw_error("step ", stats.first_skipped_step, " of ", max_steps,
                ": the loss is not finite; the run stopped before applying this update "
                "(checkpoints written so far are intact; noticed after step ",
                noticed_after, ")");
  throw_error("step ", stats.first_skipped_step, " of ", max_steps,
              ": AdamW: the gradient norm is not finite (", stats.first_skipped_grad_norm,
              "); the loss diverged; the run stopped before applying this update (checkpoints "
              "written so far are intact; noticed after step ",
              noticed_after, ")");
}

OptimizerStepStats AdamW::read_step_stats() const {
  double state[3] = {0, 0, 0};
  backend_.download(state, clip_state_);
  OptimizerStepStats stats;
  stats.grad_norm = std::sqrt(state[0]);
  // The factor adamw_step applied: torch.nn.utils.clip_grad_norm_'s formula, as on the device.
  stats.clip_scale = settings_.max_grad_norm > 0
                         ? std::min(1.0, settings_.max_grad_norm / (stats.grad_norm + 1e-6))
                         : 1.0;
  stats.lr = last_lr_;
  stats.step = steps_done_;
  stats.first_skipped_step = static_cast<int64_t>(state[1]);
  stats.first_skipped_grad_norm = std::sqrt(state[2]);
  return stats;
}

}  // namespace smol

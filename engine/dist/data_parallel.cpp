// Data-parallel optimizer steps (see data_parallel.h).
#include "engine/dist/data_parallel.h"

#include <algorithm>

#include "common/error.h"
#include "model/host_transfer.h"

namespace smol {

namespace {

// "model.layers.12.mlp.up_proj.weight" → 12; anything outside the layers → `outside`.
size_t layer_of(const std::string& name, size_t outside) {
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return outside;
  return static_cast<size_t>(std::stoul(name.substr(prefix.size())));
}

}  // namespace

DataParallel::DataParallel(Communicator& comm, LlamaModel& model, int64_t micro_batch_size)
    : comm_(comm),
      model_(model),
      backend_(model.backend()),
      micro_batch_size_(micro_batch_size),
      params_(model.trainable_params()) {
  SMOL_CHECK(micro_batch_size > 0, "data parallelism: the micro-batch size must be positive");
  if (comm.world_size() == 1 || model.mode() != TrainMode::Full) return;
  // ZeRO-1 buckets: one per layer (reduced right after that layer's backward), then the rest
  // (embedding, final norm, LM head: complete only when the backward ends).
  const size_t layers = static_cast<size_t>(model.config().num_hidden_layers);
  std::vector<std::vector<size_t>> buckets(layers + 1);
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < params_.size(); ++i) {
    buckets[layer_of(params_[i].name, layers)].push_back(i);
    sizes.push_back(params_[i].value.numel());
  }
  buckets.erase(std::remove_if(buckets.begin(), buckets.end(),
                               [](const std::vector<size_t>& b) { return b.empty(); }),
                buckets.end());
  zero_.emplace(sizes, buckets, comm.rank(), comm.world_size());
  // Backward order: the last layer's bucket completes first.
  for (size_t b = zero_->buckets().size(); b-- > 0;)
    if (layer_of(params_[zero_->buckets()[b].params.front()].name, layers) < layers)
      bucket_order_.push_back(b);
  for (size_t b = 0; b < zero_->buckets().size(); ++b)
    if (layer_of(params_[zero_->buckets()[b].params.front()].name, layers) == layers)
      bucket_order_.push_back(b);
  bucket_of_layer_.assign(layers, 0);
  for (size_t b = 0; b < zero_->buckets().size(); ++b) {
    const size_t layer = layer_of(params_[zero_->buckets()[b].params.front()].name, layers);
    if (layer < layers) bucket_of_layer_[layer] = b;
  }
  const int64_t elements = zero_->staging_size() + zero_->shard_size();
  zero_buffers_ = backend_.allocate(static_cast<size_t>(elements) * sizeof(float));  // zeros
  staging_ = zero_buffers_.view(DType::F32, Shape{zero_->staging_size()});
  gradient_shard_ = zero_buffers_.view(DType::F32, Shape{zero_->shard_size()},
                                       static_cast<size_t>(zero_->staging_size()) * sizeof(float));
}

std::vector<std::vector<TokenRow>> DataParallel::local_share(
    const std::vector<std::vector<TokenRow>>& global_update) const {
  const size_t begin = static_cast<size_t>(micro_batch_size_) * static_cast<size_t>(rank());
  std::vector<std::vector<TokenRow>> local;
  for (const std::vector<TokenRow>& micro : global_update) {
    SMOL_CHECK(micro.size() <= static_cast<size_t>(micro_batch_size_ * world_size()),
               "data parallelism: a global micro-batch of ", micro.size(), " rows exceeds ",
               micro_batch_size_, " x ", world_size(), " ranks");
    const size_t from = std::min(begin, micro.size());
    const size_t to = std::min(begin + static_cast<size_t>(micro_batch_size_), micro.size());
    local.emplace_back(micro.begin() + static_cast<std::ptrdiff_t>(from),
                       micro.begin() + static_cast<std::ptrdiff_t>(to));
  }
  return local;
}

void DataParallel::reduce_bucket(size_t b) {
  if (bucket_reduced_[b]) return;
  bucket_reduced_[b] = true;
  const ZeroBucket& bucket = zero_->buckets()[b];
  // The gaps and the padding of the staging block are never written: they stay zero.
  for (size_t i = 0; i < bucket.params.size(); ++i) {
    const Tensor& grad = params_[bucket.params[i]].grad;
    backend_.copy(staging_.elements(bucket.staging_offset + bucket.local_offset[i], grad.numel()),
                  grad.elements(0, grad.numel()));
  }
  comm_.reduce_scatter(gradient_shard_.elements(bucket.shard_offset, bucket.count),
                       staging_.elements(bucket.staging_offset, bucket.count * world_size()),
                       ReduceOp::Sum);
}

void DataParallel::gather_parameters() {
  const std::vector<ZeroPiece>& pieces = zero_->pieces();
  for (const ZeroBucket& bucket : zero_->buckets()) {
    const int64_t own = bucket.staging_offset + bucket.count * rank();
    for (const ZeroPiece& piece : pieces) {
      if (piece.shard_offset < bucket.shard_offset ||
          piece.shard_offset >= bucket.shard_offset + bucket.count)
        continue;
      backend_.copy(staging_.elements(own + piece.shard_offset - bucket.shard_offset, piece.count),
                    params_[piece.param].value.elements(piece.begin, piece.count));
    }
    comm_.all_gather(staging_.elements(bucket.staging_offset, bucket.count * world_size()),
                     staging_.elements(own, bucket.count));
    for (size_t i = 0; i < bucket.params.size(); ++i) {
      const Tensor& value = params_[bucket.params[i]].value;
      backend_.copy(
          value.elements(0, value.numel()),
          staging_.elements(bucket.staging_offset + bucket.local_offset[i], value.numel()));
    }
  }
}

TrainStepResult DataParallel::train_step(AdamW& optimizer, const LrSchedule& schedule,
                                         const std::vector<std::vector<TokenRow>>& global_update,
                                         uint64_t dropout_seed,
                                         const MicroBatchHook& after_backward,
                                         StepLosses* deferred_losses) {
  if (world_size() == 1)
    return smol::train_step(model_, optimizer, schedule, global_update, dropout_seed,
                            after_backward, deferred_losses);
  SMOL_CHECK(!global_update.empty(), "data parallelism: an update without micro-batches");
  StepTotals totals;
  for (const std::vector<TokenRow>& micro : global_update) {
    totals.supervised += count_supervised_targets(micro);
    for (const TokenRow& row : micro) totals.tokens += static_cast<int64_t>(row.input_ids.size());
  }
  const std::vector<std::vector<TokenRow>> local = local_share(global_update);
  const size_t last = local.size() - 1;
  model_.zero_grads();

  MicroBatchHook before;
  MicroBatchHook after = after_backward;
  if (zero_) {
    // The last micro-batch's backward completes each layer's gradients: reduce-scatter them
    // right there, overlapped with the backward of the layers below. Whatever a rank without
    // rows did not trigger is reduced at the end, in the same bucket order on every rank.
    bucket_reduced_.assign(zero_->buckets().size(), false);
    before = [&](size_t i) {
      if (i != last) return;
      comm_.begin_overlap();
      model_.set_layer_backward_hook([&](size_t layer) { reduce_bucket(bucket_of_layer_[layer]); });
    };
    after = [&](size_t i) {
      if (after_backward) after_backward(i);
      if (i != last) return;
      model_.set_layer_backward_hook(nullptr);
      for (size_t b : bucket_order_) reduce_bucket(b);
      comm_.end_overlap();
    };
  }
  TrainStepResult result;
  try {
    result = accumulate_gradients(model_, local, dropout_seed, after, &totals, before,
                                  /*read_loss=*/deferred_losses == nullptr);
  } catch (...) {
    model_.set_layer_backward_hook(nullptr);
    throw;
  }
  Tensor loss_check;
  if (deferred_losses) {
    // The ranks' Σ_local CE add up to the step's Σ CE: summed on the device.
    loss_check = model_.loss_accumulator();
    comm_.all_reduce(loss_check, ReduceOp::Sum);
  } else {
    // The ranks' parts Σ_local CE / N add up to the step's loss.
    double loss = result.loss;
    comm_.all_reduce_host(std::span<double>(&loss, 1), ReduceOp::Sum);
    result.loss = loss;
  }
  const double lr = schedule.lr(optimizer.steps_done());
  if (zero_) {
    // The global norm² is all-reduced on the device inside step_shard: no host wait.
    result.optimizer = optimizer.step_shard(lr, gradient_shard_, comm_, loss_check);
    gather_parameters();
  } else {
    // One fused all-reduce: after it every replica holds the same gradients, so the same clip
    // and AdamW keep the parameters identical without a broadcast.
    comm_.all_reduce(model_.gradient_arena(), ReduceOp::Sum);
    result.optimizer = optimizer.step(lr, loss_check);
  }
  if (deferred_losses) deferred_losses->record(model_, result.optimizer.step, result.supervised);
  model_.zero_grads();
  return result;
}

HostMoments DataParallel::gather_moments(const AdamW& optimizer) {
  HostMoments out;
  const std::vector<TrainableParam>& params = optimizer.params();
  if (!optimizer.sharded()) {
    for (size_t i = 0; i < params.size(); ++i) {
      out.exp_avg[params[i].name] = download_host_tensor(backend_, optimizer.first_moment(i));
      out.exp_avg_sq[params[i].name] = download_host_tensor(backend_, optimizer.second_moment(i));
    }
    return out;
  }
  SMOL_CHECK(zero_, "data parallelism: a sharded optimizer without a ZeRO-1 layout");
  // Each rank's shard of m (then v) goes to its block of the staging buffer (the shard is zero
  // outside the pieces, so the gaps stay zero), and one all-gather per bucket assembles them.
  for (const bool second : {false, true}) {
    const Tensor shard = second ? optimizer.second_moments() : optimizer.first_moments();
    HostTensorMap& into = second ? out.exp_avg_sq : out.exp_avg;
    for (const ZeroBucket& bucket : zero_->buckets()) {
      const int64_t own = bucket.staging_offset + bucket.count * rank();
      backend_.copy(staging_.elements(own, bucket.count),
                    shard.elements(bucket.shard_offset, bucket.count));
      comm_.all_gather(staging_.elements(bucket.staging_offset, bucket.count * world_size()),
                       staging_.elements(own, bucket.count));
      for (size_t i = 0; i < bucket.params.size(); ++i) {
        const Tensor& value = params[bucket.params[i]].value;
        Tensor view =
            staging_.elements(bucket.staging_offset + bucket.local_offset[i], value.numel())
                .reshaped(value.shape);
        into[params[bucket.params[i]].name] = download_host_tensor(backend_, view);
      }
    }
  }
  return out;
}

}  // namespace smol

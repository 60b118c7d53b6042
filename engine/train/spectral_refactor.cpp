// The spectral refactor of LoRA pairs, batched per shape group (see spectral_refactor.h).
#include "engine/train/spectral_refactor.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <tuple>

#include "common/error.h"
#include "engine/optimizer.h"

namespace smol {

namespace {

constexpr int64_t kMaxCoreRank = LinalgBackend::kSvdSmallMaxDim;  // svd_small's bound
constexpr double kMomentumGuard = 1e-12;     // 1/(h + 1e-12), docs/seed-behaviour.md §5.1
constexpr size_t kWorkspaceAlignment = 256;  // bytes; every view starts on this boundary
constexpr const char* kLoraA = ".lora_A.weight";
constexpr const char* kLoraB = ".lora_B.weight";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Matrix b of a batched tensor [L, m, n], as a dense [m, n] view.
Tensor matrix_of(const Tensor& batched, int64_t b) {
  const int64_t m = batched.shape[1], n = batched.shape[2];
  return batched.reshaped(Shape{batched.shape[0] * m, n}).rows(b * m, m);
}

// The floats [offset, offset + shape.numel()) of a flat F32 tensor, viewed as `shape`.
Tensor flat_slice(const Tensor& flat, size_t offset, Shape shape) {
  SMOL_CHECK(offset + static_cast<size_t>(shape.numel()) <= static_cast<size_t>(flat.numel()),
             "spectral refactor: slice ", shape.str(), " at ", offset, " outside ",
             flat.shape.str());
  Tensor t = flat;
  t.data = static_cast<float*>(flat.data) + offset;
  t.shape = shape;
  return t;
}

// Lays consecutive F32 views out in one allocation.
class WorkspacePlan {
 public:
  size_t add(int64_t floats) {
    const size_t offset = bytes_;
    bytes_ += (static_cast<size_t>(floats) * sizeof(float) + kWorkspaceAlignment - 1) /
              kWorkspaceAlignment * kWorkspaceAlignment;
    return offset;
  }
  size_t bytes() const { return std::max<size_t>(bytes_, kWorkspaceAlignment); }

 private:
  size_t bytes_ = 0;
};

void check_f32_shape(const Tensor& t, Shape shape, const std::string& what) {
  SMOL_CHECK(t.data != nullptr && t.dtype == DType::F32 && t.shape == shape,
             "spectral refactor: ", what, " must be F32 ", shape.str(), ", got ",
             dtype_name(t.dtype), " ", t.shape.str());
}

}  // namespace

std::vector<LoraPair> lora_pairs_of(const std::vector<TrainableParam>& params,
                                    const AdamW* optimizer) {
  if (optimizer)
    SMOL_CHECK(optimizer->params().size() == params.size(), "spectral refactor: the optimizer has ",
               optimizer->params().size(), " tensors but the model ", params.size());
  std::vector<LoraPair> pairs;
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& name = params[i].name;
    SMOL_CHECK(ends_with(name, kLoraA), "spectral refactor: trainable tensor ", name,
               " is not a lora_A (the refactor needs LoRA, peft.method lora, with A before B)");
    const std::string projection = name.substr(0, name.size() - std::string(kLoraA).size());
    SMOL_CHECK(i + 1 < params.size() && params[i + 1].name == projection + kLoraB,
               "spectral refactor: ", name, " is not followed by its ", projection + kLoraB);
    LoraPair pair;
    pair.name = projection;
    pair.a = params[i].value;
    pair.b = params[i + 1].value;
    if (optimizer) {
      SMOL_CHECK(optimizer->params()[i].name == name, "spectral refactor: optimizer tensor ", i,
                 " is ", optimizer->params()[i].name, ", not ", name);
      pair.first_a = optimizer->first_moment(i);
      pair.first_b = optimizer->first_moment(i + 1);
      pair.second_a = optimizer->second_moment(i);
      pair.second_b = optimizer->second_moment(i + 1);
    }
    pairs.push_back(pair);
    ++i;
  }
  return pairs;
}

std::vector<double> refactored_spectrum(const std::vector<double>& s,
                                        const RefactorSettings& settings) {
  std::vector<double> out = s;
  for (double& v : out) {
    if (settings.damping_eps > 0) v += settings.damping_eps;
    if (settings.clip_min_sigma > 0) v = std::max(v, settings.clip_min_sigma);
  }
  if (settings.balanced && !out.empty()) {
    const double mean =
        std::accumulate(out.begin(), out.end(), 0.0) / static_cast<double>(out.size());
    for (double& v : out) v = (1.0 - settings.lambda) * v + settings.lambda * mean;
  }
  return out;
}

SpectralRefactor::SpectralRefactor(Backend& backend, LinalgBackend& linalg,
                                   std::vector<LoraPair> pairs)
    : backend_(backend), linalg_(linalg), pairs_(std::move(pairs)) {
  std::map<std::tuple<int64_t, int64_t, int64_t>, size_t> group_of_shape;
  for (size_t i = 0; i < pairs_.size(); ++i) {
    const LoraPair& p = pairs_[i];
    SMOL_CHECK(p.a.shape.rank == 2 && p.b.shape.rank == 2, "spectral refactor: ", p.name, ": A ",
               p.a.shape.str(), " and B ", p.b.shape.str(), " must be matrices");
    const int64_t out = p.out(), in = p.in(), r = p.rank();
    check_f32_shape(p.a, Shape{r, in}, p.name + " lora_A");
    check_f32_shape(p.b, Shape{out, r}, p.name + " lora_B");
    SMOL_CHECK(r >= 1 && r <= kMaxCoreRank, "spectral refactor: ", p.name, ": rank ", r,
               " outside 1…", kMaxCoreRank, " (the core SVD's bound)");
    SMOL_CHECK(out >= r && in >= r, "spectral refactor: ", p.name, ": B ", p.b.shape.str(), " / A ",
               p.a.shape.str(), ": the thin QR needs out >= r and in >= r");
    const bool has_first = p.first_a.data != nullptr;
    if (has_first) {
      check_f32_shape(p.first_a, p.a.shape, p.name + " lora_A first moment");
      check_f32_shape(p.first_b, p.b.shape, p.name + " lora_B first moment");
      check_f32_shape(p.second_a, p.a.shape, p.name + " lora_A second moment");
      check_f32_shape(p.second_b, p.b.shape, p.name + " lora_B second moment");
    }
    const auto key = std::make_tuple(out, in, r);
    auto it = group_of_shape.find(key);
    if (it == group_of_shape.end()) {
      it = group_of_shape.emplace(key, groups_.size()).first;
      Group g;
      g.out = out;
      g.in = in;
      g.r = r;
      groups_.push_back(std::move(g));
    }
    groups_[it->second].members.push_back(i);
  }

  size_t spectrum_floats = 0, diagonal_floats = 0;
  std::vector<float> identity_host;
  for (Group& g : groups_) {
    const int64_t L = static_cast<int64_t>(g.members.size()), r = g.r;
    WorkspacePlan plan;
    const size_t qb = plan.add(L * g.out * r), qa = plan.add(L * g.in * r);
    const size_t rb = plan.add(L * r * r), ra = plan.add(L * r * r), core = plan.add(L * r * r);
    const size_t u = plan.add(L * r * r), vt = plan.add(L * r * r);
    const size_t identity = plan.add(r * r), x1 = plan.add(r * r), x2 = plan.add(r * r);
    g.workspace = backend_.allocate(plan.bytes());
    g.qb = g.workspace.view(DType::F32, Shape{L, g.out, r}, qb);
    g.qa = g.workspace.view(DType::F32, Shape{L, g.in, r}, qa);
    g.rb = g.workspace.view(DType::F32, Shape{L, r, r}, rb);
    g.ra = g.workspace.view(DType::F32, Shape{L, r, r}, ra);
    g.core = g.workspace.view(DType::F32, Shape{L, r, r}, core);
    g.u = g.workspace.view(DType::F32, Shape{L, r, r}, u);
    g.vt = g.workspace.view(DType::F32, Shape{L, r, r}, vt);
    g.identity = g.workspace.view(DType::F32, Shape{r, r}, identity);
    g.x1 = g.workspace.view(DType::F32, Shape{r, r}, x1);
    g.x2 = g.workspace.view(DType::F32, Shape{r, r}, x2);
    identity_host.assign(static_cast<size_t>(r * r), 0.0f);
    for (int64_t k = 0; k < r; ++k) identity_host[static_cast<size_t>(k * r + k)] = 1.0f;
    backend_.upload(g.identity, identity_host.data());
    g.spectrum_offset = spectrum_floats;
    spectrum_floats += static_cast<size_t>(L * r);
    g.diagonal_offset = diagonal_floats;
    diagonal_floats += static_cast<size_t>(2 * L * r * r);
  }
  spectra_buffer_ = backend_.allocate(std::max<size_t>(spectrum_floats, 1) * sizeof(float));
  diagonals_buffer_ = backend_.allocate(std::max<size_t>(diagonal_floats, 1) * sizeof(float));
  spectra_ = spectra_buffer_.view(DType::F32, Shape{static_cast<int64_t>(spectrum_floats)});
  diagonals_ = diagonals_buffer_.view(DType::F32, Shape{static_cast<int64_t>(diagonal_floats)});
}

RefactorReport SpectralRefactor::apply(const RefactorSettings& settings) {
  RefactorReport report;
  if (pairs_.empty()) return report;
  SMOL_CHECK(settings.lambda >= 0 && settings.lambda <= 1, "spectral refactor: λ ", settings.lambda,
             " outside [0, 1]");

  // Step 1 for every group: B and Aᵀ gathered into the batched operands, batched thin QRs,
  // the cores C = R_b·R_aᵀ, one batched SVD per group into the shared spectrum buffer.
  for (Group& g : groups_) {
    const int64_t L = static_cast<int64_t>(g.members.size()), r = g.r;
    for (int64_t l = 0; l < L; ++l) {
      const LoraPair& p = pairs_[g.members[static_cast<size_t>(l)]];
      backend_.copy(matrix_of(g.qb, l), p.b);
      backend_.matmul(matrix_of(g.qa, l), p.a, g.identity, Transpose::Yes, Transpose::No);  // Aᵀ
    }
    linalg_.qr_thin(g.qb, g.rb, g.qb);
    linalg_.qr_thin(g.qa, g.ra, g.qa);
    for (int64_t l = 0; l < L; ++l)
      backend_.matmul(matrix_of(g.core, l), matrix_of(g.rb, l), matrix_of(g.ra, l), Transpose::No,
                      Transpose::Yes);
    linalg_.svd_small(g.u, flat_slice(spectra_, g.spectrum_offset, Shape{L, r}), g.vt, g.core);
  }

  // The host round-trip: every layer's S in one download; step 2 on the host; diag(h) and
  // diag(1/(h + 1e-12)) uploaded in one buffer.
  std::vector<float> spectra_host(static_cast<size_t>(spectra_.numel()));
  backend_.download(spectra_host.data(), spectra_);
  std::vector<float> diagonals_host(static_cast<size_t>(diagonals_.numel()), 0.0f);
  report.layers.resize(pairs_.size());
  report.spectra_before.resize(pairs_.size());
  report.spectra_after.resize(pairs_.size());
  report.relative_change.resize(pairs_.size());
  for (const Group& g : groups_) {
    const int64_t L = static_cast<int64_t>(g.members.size()), r = g.r;
    for (int64_t l = 0; l < L; ++l) {
      const size_t pair = g.members[static_cast<size_t>(l)];
      const float* s = spectra_host.data() + g.spectrum_offset + static_cast<size_t>(l * r);
      std::vector<double> before(s, s + r);
      std::vector<double> tilde = refactored_spectrum(before, settings);
      std::vector<double> after(tilde.size());
      double change2 = 0, norm2 = 0;
      float* h = diagonals_host.data() + g.diagonal_offset + static_cast<size_t>(l * r * r);
      float* h_inverse = h + static_cast<size_t>(L * r * r);
      for (int64_t k = 0; k < r; ++k) {
        const double hk = std::sqrt(std::max(tilde[static_cast<size_t>(k)], 0.0));
        after[static_cast<size_t>(k)] = hk * hk;
        h[k * r + k] = static_cast<float>(hk);
        h_inverse[k * r + k] = static_cast<float>(1.0 / (hk + kMomentumGuard));
        const double d = after[static_cast<size_t>(k)] - before[static_cast<size_t>(k)];
        change2 += d * d;
        norm2 += before[static_cast<size_t>(k)] * before[static_cast<size_t>(k)];
      }
      report.layers[pair] = pairs_[pair].name;
      report.relative_change[pair] = norm2 > 0 ? std::sqrt(change2 / norm2) : 0.0;
      report.spectra_before[pair] = std::move(before);
      report.spectra_after[pair] = std::move(after);
    }
  }
  backend_.upload(diagonals_, diagonals_host.data());

  // Steps 3 and 4 per layer: B′ = Q_b·(U_c·diag(h)), A′ = (diag(h)·V_cᵀ)·Q_aᵀ, then the
  // first-moment remap with R_aᵀ·V_c·diag(1/h) and diag(1/h)·U_cᵀ·R_b. Q_b / Q_a are dead once
  // B′ / A′ are written, so they hold the remapped moments before the copy back.
  for (Group& g : groups_) {
    const int64_t L = static_cast<int64_t>(g.members.size()), r = g.r;
    const Tensor all_h = flat_slice(diagonals_, g.diagonal_offset, Shape{2 * L * r, r});
    for (int64_t l = 0; l < L; ++l) {
      LoraPair& p = pairs_[g.members[static_cast<size_t>(l)]];
      const Tensor h = all_h.rows(l * r, r);
      const Tensor h_inverse = all_h.rows((L + l) * r, r);
      const Tensor qb = matrix_of(g.qb, l), qa = matrix_of(g.qa, l);
      const Tensor rb = matrix_of(g.rb, l), ra = matrix_of(g.ra, l);
      const Tensor u = matrix_of(g.u, l), vt = matrix_of(g.vt, l);
      backend_.matmul(g.x1, u, h, Transpose::No, Transpose::No);
      backend_.matmul(p.b, qb, g.x1, Transpose::No, Transpose::No);
      backend_.matmul(g.x1, h, vt, Transpose::No, Transpose::No);
      backend_.matmul(p.a, g.x1, qa, Transpose::No, Transpose::Yes);
      const bool has_moments = p.first_a.data != nullptr;
      if (settings.preserve_momentum && has_moments) {
        backend_.matmul(g.x1, vt, h_inverse, Transpose::Yes, Transpose::No);  // V_c·diag(1/h)
        backend_.matmul(g.x2, ra, g.x1, Transpose::Yes, Transpose::No);       // R_aᵀ·…
        backend_.matmul(qb, p.first_b, g.x2, Transpose::No, Transpose::No);
        backend_.copy(p.first_b, qb);
        backend_.matmul(g.x1, h_inverse, u, Transpose::No, Transpose::Yes);  // diag(1/h)·U_cᵀ
        backend_.matmul(g.x2, g.x1, rb, Transpose::No, Transpose::No);       // …·R_b
        const Tensor moment_a = qa.reshaped(Shape{r, g.in});
        backend_.matmul(moment_a, g.x2, p.first_a, Transpose::No, Transpose::No);
        backend_.copy(p.first_a, moment_a);
      }
      if (settings.clear_momentum && has_moments) {
        backend_.fill_zero(p.first_a);
        backend_.fill_zero(p.first_b);
        backend_.fill_zero(p.second_a);
        backend_.fill_zero(p.second_b);
      }
    }
  }
  return report;
}

}  // namespace smol

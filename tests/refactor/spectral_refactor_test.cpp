// The spectral refactor's math (docs/seed-behaviour.md §5.1) on the cpu backend, with the
// double-precision reference LinalgBackend (engine/train/host_reference_linalg.h): the invariants
// the issue names (exact mode keeps B·A and mB·A + B·mA; balanced mode's spectrum; B′'s orthogonal
// columns with norms √S̃), the NumPy golden of tests/golden/refactor, and bad inputs.
//
// Tolerances. Everything runs in fp32 (unit roundoff u = 6e-8). The refactor is a thin QR of
// [m, r] matrices (backward error ~ m·r·u), an r×r SVD and four products of inner size ≤ m;
// for m ≤ 64, r ≤ 8 and well-conditioned random factors (κ(B), κ(A) ≤ ~10) that is
// ~64·8·6e-8·10 ≈ 3e-4 in the worst case and ~1e-6 in practice, so the 1e-5 relative
// (Frobenius) bound has a margin of about 10 and still fails for any real error (a wrong sign,
// a dropped factor or a transposed R is O(1)). Per-tensor comparisons with the golden use the
// max-norm relative error 2e-4: B′ and A′ also carry U_c, whose error is ‖E‖/gap with relative
// gaps ≥ 0.05 (asserted by the generator), i.e. up to 20× the ~1e-6 above.
#include "engine/train/spectral_refactor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <tuple>

#include "common/error.h"
#include "engine/train/host_reference_linalg.h"
#include "kernels/cpu/cpu_backend.h"
#include "linalg/decompositions.h"

namespace smol {
namespace {

// A LoRA pair whose tensors live in one backend buffer.
struct OwnedPair {
  Buffer memory;
  LoraPair pair;
};

Tensor upload_matrix(Backend& backend, const Buffer& memory, size_t& offset, int64_t rows,
                     int64_t cols, const std::vector<float>& values) {
  Tensor t = memory.view(DType::F32, Shape{rows, cols}, offset);
  offset += static_cast<size_t>(rows * cols) * sizeof(float);
  backend.upload(t, values.data());
  return t;
}

OwnedPair make_pair(Backend& backend, const std::string& name, int64_t out, int64_t in, int64_t r,
                    const std::vector<float>& b, const std::vector<float>& a,
                    const std::vector<float>& mb, const std::vector<float>& ma,
                    const std::vector<float>& vb, const std::vector<float>& va) {
  OwnedPair p;
  p.memory = backend.allocate(static_cast<size_t>(3 * (out * r + r * in)) * sizeof(float));
  size_t offset = 0;
  p.pair.name = name;
  p.pair.b = upload_matrix(backend, p.memory, offset, out, r, b);
  p.pair.a = upload_matrix(backend, p.memory, offset, r, in, a);
  p.pair.first_b = upload_matrix(backend, p.memory, offset, out, r, mb);
  p.pair.first_a = upload_matrix(backend, p.memory, offset, r, in, ma);
  p.pair.second_b = upload_matrix(backend, p.memory, offset, out, r, vb);
  p.pair.second_a = upload_matrix(backend, p.memory, offset, r, in, va);
  return p;
}

std::vector<float> random_values(std::mt19937& rng, int64_t n, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

OwnedPair random_pair(Backend& backend, std::mt19937& rng, const std::string& name, int64_t out,
                      int64_t in, int64_t r) {
  return make_pair(backend, name, out, in, r, random_values(rng, out * r, 1.0f),
                   random_values(rng, r * in, 0.3f), random_values(rng, out * r, 1e-2f),
                   random_values(rng, r * in, 1e-2f), random_values(rng, out * r, 1e-4f),
                   random_values(rng, r * in, 1e-4f));
}

DenseMatrix host_matrix(Backend& backend, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  backend.download(v.data(), t);
  DenseMatrix m(t.shape[0], t.shape[1]);
  for (size_t i = 0; i < v.size(); ++i) m.data[i] = v[i];
  return m;
}

DenseMatrix add(const DenseMatrix& x, const DenseMatrix& y) {
  DenseMatrix z = x;
  for (size_t i = 0; i < z.data.size(); ++i) z.data[i] += y.data[i];
  return z;
}

double relative_difference(const DenseMatrix& actual, const DenseMatrix& expected) {
  DenseMatrix d = actual;
  for (size_t i = 0; i < d.data.size(); ++i) d.data[i] -= expected.data[i];
  return frobenius(d) / frobenius(expected);
}

// Two groups: (64, 48, 8) twice and (32, 64, 8) once, as q/k-like projections.
struct Fixture {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  std::unique_ptr<LinalgBackend> linalg = make_host_reference_linalg(*backend);
  std::vector<OwnedPair> owned;
  Fixture() {
    std::mt19937 rng(7);
    owned.push_back(random_pair(*backend, rng, "layers.0.q_proj", 64, 48, 8));
    owned.push_back(random_pair(*backend, rng, "layers.0.k_proj", 32, 64, 8));
    owned.push_back(random_pair(*backend, rng, "layers.1.q_proj", 64, 48, 8));
  }
  std::vector<LoraPair> pairs() const {
    std::vector<LoraPair> p;
    for (const OwnedPair& o : owned) p.push_back(o.pair);
    return p;
  }
};

TEST(SpectralRefactor, ExactModeKeepsTheProductAndTheMomentumFunction) {
  Fixture f;
  std::vector<DenseMatrix> product, momentum_function;
  for (const OwnedPair& o : f.owned) {
    const DenseMatrix b = host_matrix(*f.backend, o.pair.b), a = host_matrix(*f.backend, o.pair.a);
    product.push_back(multiply(b, false, a, false));
    momentum_function.push_back(
        add(multiply(host_matrix(*f.backend, o.pair.first_b), false, a, false),
            multiply(b, false, host_matrix(*f.backend, o.pair.first_a), false)));
  }
  SpectralRefactor refactor(*f.backend, *f.linalg, f.pairs());
  EXPECT_EQ(refactor.group_count(), 2u);
  RefactorSettings settings;
  settings.balanced = false;
  settings.preserve_momentum = true;
  settings.clear_momentum = false;
  const RefactorReport report = refactor.apply(settings);
  ASSERT_EQ(report.layers.size(), 3u);
  EXPECT_EQ(report.layers[1], "layers.0.k_proj");  // module order, not group order
  for (size_t i = 0; i < f.owned.size(); ++i) {
    const LoraPair& p = f.owned[i].pair;
    const DenseMatrix b = host_matrix(*f.backend, p.b), a = host_matrix(*f.backend, p.a);
    EXPECT_LT(relative_difference(multiply(b, false, a, false), product[i]), 1e-5) << p.name;
    const DenseMatrix after = add(multiply(host_matrix(*f.backend, p.first_b), false, a, false),
                                  multiply(b, false, host_matrix(*f.backend, p.first_a), false));
    EXPECT_LT(relative_difference(after, momentum_function[i]), 1e-5) << p.name;
    EXPECT_LT(report.relative_change[i], 1e-5) << p.name;
    // The refactor did move the factors: B′ has orthogonal columns (B′ᵀB′ = diag(S)).
    const DenseMatrix gram = multiply(b, true, b, false);
    double off_diagonal = 0;
    for (int64_t k = 0; k < gram.rows; ++k)
      for (int64_t j = 0; j < gram.cols; ++j)
        if (j != k) off_diagonal = std::max(off_diagonal, std::fabs(gram.at(k, j)));
    EXPECT_LT(off_diagonal, 1e-5 * gram.at(0, 0)) << p.name;
  }
}

TEST(SpectralRefactor, BalancedModeShrinksTheSpreadAroundTheMean) {
  Fixture f;
  std::vector<std::vector<double>> before;
  for (const OwnedPair& o : f.owned)
    before.push_back(thin_svd(multiply(host_matrix(*f.backend, o.pair.b), false,
                                       host_matrix(*f.backend, o.pair.a), false))
                         .S);
  SpectralRefactor refactor(*f.backend, *f.linalg, f.pairs());
  RefactorSettings settings;
  settings.balanced = true;
  settings.lambda = 0.6;
  const RefactorReport report = refactor.apply(settings);
  for (size_t i = 0; i < f.owned.size(); ++i) {
    const LoraPair& p = f.owned[i].pair;
    const int64_t r = p.rank();
    const std::vector<double> s(before[i].begin(), before[i].begin() + r);
    double mean = 0;
    for (double v : s) mean += v / static_cast<double>(r);
    const DenseMatrix b = host_matrix(*f.backend, p.b);
    const std::vector<double> after =
        thin_svd(multiply(b, false, host_matrix(*f.backend, p.a), false)).S;
    const DenseMatrix gram = multiply(b, true, b, false);  // B′ᵀB′ = diag(S̃)
    for (int64_t k = 0; k < r; ++k) {
      const double expected = 0.4 * s[static_cast<size_t>(k)] + 0.6 * mean;
      EXPECT_NEAR(after[static_cast<size_t>(k)], expected, 1e-5 * s[0]) << p.name << " σ" << k;
      EXPECT_NEAR(report.spectra_before[i][static_cast<size_t>(k)], s[static_cast<size_t>(k)],
                  1e-5 * s[0]);
      EXPECT_NEAR(report.spectra_after[i][static_cast<size_t>(k)], expected, 1e-5 * s[0]);
      for (int64_t j = 0; j < r; ++j)
        EXPECT_NEAR(gram.at(k, j), j == k ? expected : 0.0, 1e-5 * s[0])
            << p.name << " B′ᵀB′(" << k << ", " << j << ")";
    }
    // relative_change = ‖B′A′ − BA‖ / ‖BA‖ = ‖S̃ − S‖ / ‖S‖.
    double change2 = 0, norm2 = 0;
    for (int64_t k = 0; k < r; ++k) {
      const double d = 0.6 * (mean - s[static_cast<size_t>(k)]);
      change2 += d * d;
      norm2 += s[static_cast<size_t>(k)] * s[static_cast<size_t>(k)];
    }
    EXPECT_NEAR(report.relative_change[i], std::sqrt(change2 / norm2), 1e-5);
    EXPECT_GT(report.relative_change[i], 1e-2);  // the balanced mode did change the function
  }
}

std::vector<float> download(Backend& backend, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  backend.download(v.data(), t);
  return v;
}

bool all_zero(const std::vector<float>& v) {
  for (float x : v)
    if (x != 0.0f) return false;
  return true;
}

TEST(SpectralRefactor, ClearMomentumZeroesMAndVAndPlainModeLeavesThem) {
  {
    Fixture f;
    SpectralRefactor refactor(*f.backend, *f.linalg, f.pairs());
    RefactorSettings settings;
    settings.preserve_momentum = true;
    settings.clear_momentum = true;
    refactor.apply(settings);
    for (const OwnedPair& o : f.owned)
      for (const Tensor& t : {o.pair.first_a, o.pair.first_b, o.pair.second_a, o.pair.second_b})
        EXPECT_TRUE(all_zero(download(*f.backend, t))) << o.pair.name;
  }
  {
    // Neither preserve nor clear: m and v stay exactly as they were (in the old
    // coordinates, as the seed leaves them); v is never remapped in any mode.
    Fixture f;
    std::vector<std::vector<float>> moments;
    for (const OwnedPair& o : f.owned)
      for (const Tensor& t : {o.pair.first_a, o.pair.first_b, o.pair.second_a, o.pair.second_b})
        moments.push_back(download(*f.backend, t));
    SpectralRefactor refactor(*f.backend, *f.linalg, f.pairs());
    RefactorSettings settings;
    settings.preserve_momentum = false;
    settings.clear_momentum = false;
    refactor.apply(settings);
    size_t i = 0;
    for (const OwnedPair& o : f.owned)
      for (const Tensor& t : {o.pair.first_a, o.pair.first_b, o.pair.second_a, o.pair.second_b})
        EXPECT_EQ(download(*f.backend, t), moments[i++]) << o.pair.name;
  }
}

std::vector<float> flat(const nlohmann::json& matrix) {
  std::vector<float> v;
  for (const nlohmann::json& row : matrix)
    for (const nlohmann::json& x : row) v.push_back(x.get<float>());
  return v;
}

TEST(SpectralRefactor, EqualsTheNumpyReference) {
  std::ifstream in(std::string(SMOL_SOURCE_DIR) + "/tests/golden/refactor/refactor_cases.json");
  ASSERT_TRUE(in) << "tests/golden/refactor/refactor_cases.json is missing (make_fixtures.py)";
  const nlohmann::json doc = nlohmann::json::parse(in);
  ASSERT_EQ(doc["cases"].size(), 4u);
  for (const nlohmann::json& c : doc["cases"]) {
    const std::string name = c["name"];
    std::unique_ptr<Backend> backend = make_cpu_backend();
    std::unique_ptr<LinalgBackend> linalg = make_host_reference_linalg(*backend);
    std::vector<OwnedPair> owned;
    std::vector<LoraPair> pairs;
    for (const nlohmann::json& p : doc["pairs"]) {
      const int64_t out = static_cast<int64_t>(p["b"].size()),
                    r = static_cast<int64_t>(p["a"].size()),
                    in_dim = static_cast<int64_t>(p["a"][0].size());
      owned.push_back(make_pair(*backend, p["name"], out, in_dim, r, flat(p["b"]), flat(p["a"]),
                                flat(p["mb"]), flat(p["ma"]), flat(p["vb"]), flat(p["va"])));
      pairs.push_back(owned.back().pair);
    }
    SpectralRefactor refactor(*backend, *linalg, pairs);
    EXPECT_EQ(refactor.group_count(), 2u);
    RefactorSettings settings;
    settings.balanced = c["balanced"];
    settings.lambda = c["lambda"];
    settings.damping_eps = c["damping_eps"];
    settings.clip_min_sigma = c["clip_min_sigma"];
    settings.preserve_momentum = c["preserve_momentum"];
    settings.clear_momentum = c["clear_momentum"];
    const RefactorReport report = refactor.apply(settings);
    for (size_t i = 0; i < owned.size(); ++i) {
      const nlohmann::json& e = c["expected"][i];
      const LoraPair& p = owned[i].pair;
      const std::pair<const char*, Tensor> tensors[] = {{"b", p.b},         {"a", p.a},
                                                        {"mb", p.first_b},  {"ma", p.first_a},
                                                        {"vb", p.second_b}, {"va", p.second_a}};
      for (const auto& [key, tensor] : tensors) {
        const std::vector<float> expected = flat(e[key]), actual = download(*backend, tensor);
        ASSERT_EQ(actual.size(), expected.size());
        double diff = 0, scale = 0;
        for (size_t k = 0; k < actual.size(); ++k) {
          diff = std::max(diff, std::fabs(static_cast<double>(actual[k]) - expected[k]));
          scale = std::max(scale, std::fabs(static_cast<double>(expected[k])));
        }
        if (scale == 0)
          EXPECT_EQ(diff, 0.0) << name << " " << p.name << " " << key;
        else
          EXPECT_LT(diff / scale, 2e-4) << name << " " << p.name << " " << key;
      }
      for (size_t k = 0; k < e["spectrum_after"].size(); ++k) {
        EXPECT_NEAR(report.spectra_before[i][k], e["spectrum_before"][k].get<double>(),
                    2e-4 * e["spectrum_before"][0].get<double>());
        EXPECT_NEAR(report.spectra_after[i][k], e["spectrum_after"][k].get<double>(),
                    2e-4 * e["spectrum_before"][0].get<double>());
      }
    }
  }
}

TEST(SpectralRefactor, RefactoredSpectrumFollowsStepTwo) {
  RefactorSettings s;
  s.balanced = false;
  s.damping_eps = 0.1;
  s.clip_min_sigma = 0.5;
  EXPECT_EQ(refactored_spectrum({3.0, 1.0, 0.2}, s), (std::vector<double>{3.1, 1.1, 0.5}));
  s.balanced = true;
  s.lambda = 0.5;
  s.damping_eps = 0;
  s.clip_min_sigma = 0;
  EXPECT_EQ(refactored_spectrum({3.0, 1.0, 2.0}, s), (std::vector<double>{2.5, 1.5, 2.0}));
}

TEST(SpectralRefactor, RejectsShapesTheFactorisationCannotTake) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  std::unique_ptr<LinalgBackend> linalg = make_host_reference_linalg(*backend);
  std::mt19937 rng(1);
  OwnedPair wide = random_pair(*backend, rng, "layers.0.v_proj", 2, 16, 4);  // out < r
  try {
    SpectralRefactor refactor(*backend, *linalg, {wide.pair});
    FAIL() << "out < r accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.v_proj"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("out >= r"), std::string::npos) << e.what();
  }
  OwnedPair big = random_pair(*backend, rng, "layers.0.o_proj", 80, 80, 65);
  EXPECT_THROW(SpectralRefactor(*backend, *linalg, {big.pair}), Error);
}

// The product LinalgBackend (make_linalg: LAPACKE in fp32 on cpu; cuSOLVER's entry points on
// cuda-emu) against the double host reference, on the same pairs and settings, through the
// whole refactor. Same tolerance argument as the golden (2e-4 max-norm relative): both are
// fp32 refactors whose factorisations differ only in rounding.
class ProductLinalg : public ::testing::TestWithParam<std::string> {};

TEST_P(ProductLinalg, RefactorEqualsTheHostReference) {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LinalgBackend> product;
  try {
    backend = make_backend(GetParam());
    product = make_linalg(*backend);
  } catch (const Error& e) {
    GTEST_SKIP() << "SKIPPED LOUDLY: no LinalgBackend for " << GetParam()
                 << " in this build: " << e.what();
  }
  std::unique_ptr<LinalgBackend> reference = make_host_reference_linalg(*backend);
  std::vector<std::vector<float>> results[2];
  for (int which = 0; which < 2; ++which) {
    std::mt19937 rng(11);
    std::vector<OwnedPair> owned;
    std::vector<LoraPair> pairs;
    for (const auto& [out, in, r] : {std::tuple<int64_t, int64_t, int64_t>{64, 48, 8},
                                     {32, 64, 8},
                                     {64, 48, 8},
                                     {96, 40, 16}}) {
      owned.push_back(random_pair(*backend, rng, "p" + std::to_string(owned.size()), out, in, r));
      pairs.push_back(owned.back().pair);
    }
    SpectralRefactor refactor(*backend, which == 0 ? *product : *reference, pairs);
    RefactorSettings settings;
    settings.lambda = 0.5;
    settings.preserve_momentum = true;
    settings.clear_momentum = false;
    refactor.apply(settings);
    for (const OwnedPair& o : owned)
      for (const Tensor& t : {o.pair.b, o.pair.a, o.pair.first_b, o.pair.first_a})
        results[which].push_back(download(*backend, t));
  }
  for (size_t i = 0; i < results[0].size(); ++i) {
    double diff = 0, scale = 0;
    for (size_t k = 0; k < results[0][i].size(); ++k) {
      diff = std::max(diff, std::fabs(static_cast<double>(results[0][i][k]) - results[1][i][k]));
      scale = std::max(scale, std::fabs(static_cast<double>(results[1][i][k])));
    }
    EXPECT_LT(diff / scale, 2e-4) << GetParam() << " tensor " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, ProductLinalg, ::testing::Values("cpu", "cuda-emu"),
                         [](const auto& info) {
                           return info.param == "cpu" ? std::string("cpu")
                                                      : std::string("cuda_emu");
                         });

}  // namespace
}  // namespace smol

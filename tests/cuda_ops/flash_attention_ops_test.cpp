// cuda vs cpu: the tensor-core flash attention kernels (kernels/cuda/flash_attention.cu, bf16,
// head dim a multiple of 16 ≤ 128) forward and backward on ragged packs with one-token
// sequences and rows outside the layout, every GQA grouping, head dims 64 / 80 / 128, a long
// sequence (2048 tokens), the longest supported one (the last 256 queries of SmolLM2's
// 8192-token context; the whole square on a real GPU; docs/design.md §2.5 "Longest supported
// length"), the launch grid's head limit, split-K decode layouts over a KV cache whose unused
// rows hold NaN, and bitwise determinism of two runs.
//
// Tolerances. bf16 keeps 8 significant bits (7 stored + 1 implicit), so one round-to-nearest
// changes a value by at most u = 2^-8 of its magnitude. Each path's roundings on the device:
//   out   P rounded to bf16 before P·V (one rounding per term p_j·v_j), out rounded once:
//         |err| ≤ u·|out| + u·Σ_j p_j|v_j|/ℓ
//   dv    Pᵀ rounded per term, dv rounded once:      ≤ u·|dv| + u·Σ_i P_ij|dO_i|
//   dk    dSᵀ rounded per term, dk rounded once:     ≤ u·|dk| + u·scale·Σ_(i,h)|dS_ij||q_i|
//   dq    dS rounded per term, dq rounded once:      ≤ u·|dq| + u·scale·Σ_j|dS_ij||k_j|
// The Σ|term| magnitudes are computed on the host in double (reference_magnitudes below). On
// top: fp32 accumulation in a different order than the cpu backend: a sum of n terms in fp32
// errs by at most (n − 1)·2^-24 of Σ|term| in either order, so the two differ by less than
// 2n·2^-24 of it; the allowance is max(2^-14, 2n·2^-24) with n the longest sum of the case
// (dq: k_len keys; dk, dv: q_len·group query rows; out: k_len keys), i.e. 2^-14 up to 512
// terms and 2^-10 at 8192; and 1e-6 absolute. lse has no bf16 rounding (fp32 log-sum-exp of the
// same bf16 inputs, a sum of ≤ k_len terms): max(2^-16, 2·k_len·2^-24)·(1 + |lse|).
// The backward is compared with the cpu backward given the device's own out and lse, so that
// the forward's roundings (checked above) do not enter the backward check through Δ = dO·out.
#include <cstring>

#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

constexpr double kU = 0x1p-8;         // bf16 unit roundoff
constexpr float kUntouched = 0.375f;  // out rows outside the layout must keep this value

struct Case {
  std::string name;
  int64_t hq, hkv, dim, tq, tk;
  std::vector<SeqSpan> seqs;

  // Terms in the longest fp32 sum of the case (header comment).
  int64_t longest_sum() const {
    int64_t n = 1;
    for (const SeqSpan& s : seqs) n = std::max({n, int64_t{s.k_len}, s.q_len * (hq / hkv)});
    return n;
  }
  // fp32 accumulation-order allowance relative to Σ|term| (header comment).
  double fp32_sum_allowance() const { return std::max(0x1p-14, 2.0 * longest_sum() * 0x1p-24); }
};

struct Results {
  std::vector<float> out, lse, dq, dk, dv;
};

AttentionLayout make_layout(const Case& c) {
  AttentionLayout layout;
  layout.seqs = c.seqs;
  for (const SeqSpan& s : c.seqs) {
    layout.max_q_len = std::max(layout.max_q_len, s.q_len);
    layout.max_k_len = std::max(layout.max_k_len, s.k_len);
  }
  return layout;
}

struct Inputs {
  std::vector<float> q, k, v, dout;
};

Inputs make_inputs(const Case& c) {
  Inputs in;
  in.q = rounded_bf16(random_vector(c.tq * c.hq * c.dim, 200, -2.0f, 2.0f));
  in.k = rounded_bf16(random_vector(c.tk * c.hkv * c.dim, 201, -2.0f, 2.0f));
  in.v = rounded_bf16(random_vector(c.tk * c.hkv * c.dim, 202));
  in.dout = rounded_bf16(random_vector(c.tq * c.hq * c.dim, 203));
  // Key/value rows that no sequence owns (unused KV-cache slots) hold NaN: a kernel that reads
  // past k_len poisons its output.
  std::vector<bool> owned(c.tk, false);
  for (const SeqSpan& s : c.seqs)
    for (int j = s.k_begin; j < s.k_begin + s.k_len; ++j) owned[j] = true;
  const int64_t row = c.hkv * c.dim;
  for (int64_t j = 0; j < c.tk; ++j)
    if (!owned[j])
      for (int64_t e = 0; e < row; ++e) in.k[j * row + e] = in.v[j * row + e] = NAN;
  return in;
}

// Forward then backward on `b`. With `given` (the cpu reference run), the backward uses the
// given out and lse instead of this backend's own.
Results run(Backend& b, DType dt, const Case& c, const Inputs& in, const Results* given) {
  const AttentionLayout layout = make_layout(c);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
  const Shape sq{c.tq, c.hq, c.dim}, sk{c.tk, c.hkv, c.dim};
  Owned q = make_tensor(b, in.q, sq, dt), k = make_tensor(b, in.k, sk, dt),
        v = make_tensor(b, in.v, sk, dt), dy = make_tensor(b, in.dout, sq, dt);
  Owned out = make_tensor(b, std::vector<float>(c.tq * c.hq * c.dim, kUntouched), sq, dt);
  Owned lse = make_tensor(b, std::vector<float>(c.tq * c.hq, 0.0f), {c.tq, c.hq}, DType::F32);
  // dq/dk/dv start as garbage: the backward must overwrite (or zero) every row.
  Owned dq = make_tensor(b, std::vector<float>(c.tq * c.hq * c.dim, 7.0f), sq, dt);
  Owned dk = make_tensor(b, std::vector<float>(c.tk * c.hkv * c.dim, 7.0f), sk, dt);
  Owned dv = make_tensor(b, std::vector<float>(c.tk * c.hkv * c.dim, 7.0f), sk, dt);
  b.attention_forward(out.tensor, lse.tensor, q.tensor, k.tensor, v.tensor, layout, scale);
  Results r;
  r.out = read(b, out.tensor);
  r.lse = read(b, lse.tensor);
  if (given) {
    out = make_tensor(b, given->out, sq, dt);
    lse = make_tensor(b, given->lse, {c.tq, c.hq}, DType::F32);
  }
  b.attention_backward(dq.tensor, dk.tensor, dv.tensor, dy.tensor, q.tensor, k.tensor, v.tensor,
                       out.tensor, lse.tensor, layout, scale);
  r.dq = read(b, dq.tensor);
  r.dk = read(b, dk.tensor);
  r.dv = read(b, dv.tensor);
  return r;
}

// Σ|term| of every output element (header comment), in double, from the inputs and the
// device's out (through Δ).
Results reference_magnitudes(const Case& c, const Inputs& in, const std::vector<float>& out) {
  const int64_t D = c.dim, group = c.hq / c.hkv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Results m;
  m.out.assign(c.tq * c.hq * D, 0.0);
  m.dq.assign(c.tq * c.hq * D, 0.0);
  m.dk.assign(c.tk * c.hkv * D, 0.0);
  m.dv.assign(c.tk * c.hkv * D, 0.0);
  for (const SeqSpan& s : c.seqs)
    for (int i = 0; i < s.q_len; ++i)
      for (int64_t h = 0; h < c.hq; ++h) {
        const int64_t kv = h / group, qrow = (s.q_begin + i) * c.hq + h;
        const int keys = s.k_len - s.q_len + i + 1;
        std::vector<double> p(keys), ds(keys);
        double mx = -INFINITY;
        for (int j = 0; j < keys; ++j) {
          const int64_t krow = (s.k_begin + j) * c.hkv + kv;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += double(in.q[qrow * D + d]) * in.k[krow * D + d];
          p[j] = dot * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (double& x : p) sum += (x = std::exp(x - mx));
        double delta = 0;
        for (int64_t d = 0; d < D; ++d) delta += double(in.dout[qrow * D + d]) * out[qrow * D + d];
        for (int j = 0; j < keys; ++j) {
          p[j] /= sum;
          const int64_t krow = (s.k_begin + j) * c.hkv + kv;
          double dp = 0;
          for (int64_t d = 0; d < D; ++d) dp += double(in.dout[qrow * D + d]) * in.v[krow * D + d];
          ds[j] = std::fabs(p[j] * (dp - delta));
          for (int64_t d = 0; d < D; ++d) {
            m.out[qrow * D + d] += p[j] * std::fabs(in.v[krow * D + d]);
            m.dv[krow * D + d] += p[j] * std::fabs(in.dout[qrow * D + d]);
            m.dq[qrow * D + d] += scale * ds[j] * std::fabs(in.k[krow * D + d]);
            m.dk[krow * D + d] += scale * ds[j] * std::fabs(in.q[qrow * D + d]);
          }
        }
      }
  return m;
}

// |got − want| ≤ u·|want| + (u + fp32_sum)·mag + 1e-6 elementwise (every path rounds each term
// to bf16). Reports the worst element and max error.
void expect_within(const std::vector<float>& got, const std::vector<float>& want,
                   const std::vector<float>& mag, double fp32_sum, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst_excess = -INFINITY, max_err = 0, max_ratio = 0;
  size_t worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    const double allowed = kU * std::fabs(want[i]) + (kU + fp32_sum) * mag[i] + 1e-6;
    const double excess = std::isnan(err) ? INFINITY : err - allowed;
    max_err = std::max(max_err, err);
    max_ratio = std::max(max_ratio, err / allowed);
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  EXPECT_LE(worst_excess, 0.0) << what << ": element " << worst << " got " << got[worst] << " want "
                               << want[worst] << " magnitude " << mag[worst];
  std::printf("[ max-err  ] %-52s %.3e (%.2f of the allowance)\n", what.c_str(), max_err,
              max_ratio);
}

void run_case(Backend& dev, Backend& cpu, const Case& c) {
  const Inputs in = make_inputs(c);
  const Results got = run(dev, DType::BF16, c, in, nullptr);
  // The cpu reference: its own forward; its backward from the device's out and lse.
  const Results want = run(cpu, DType::F32, c, in, &got);
  const Results mag = reference_magnitudes(c, in, got.out);

  std::vector<bool> q_covered(c.tq, false), k_covered(c.tk, false);
  for (const SeqSpan& s : c.seqs) {
    for (int i = s.q_begin; i < s.q_begin + s.q_len; ++i) q_covered[i] = true;
    for (int j = s.k_begin; j < s.k_begin + s.k_len; ++j) k_covered[j] = true;
  }
  // Rows outside the layout: out untouched, gradients exactly zero (checked exactly, then
  // excluded from the tolerance checks by copying `want` there).
  Results want_covered = want;
  const int64_t qrow = c.hq * c.dim, krow = c.hkv * c.dim;
  int uncovered_errors = 0;
  for (int64_t i = 0; i < c.tq; ++i)
    if (!q_covered[i])
      for (int64_t e = 0; e < qrow; ++e) {
        uncovered_errors += got.out[i * qrow + e] != kUntouched;
        uncovered_errors += got.dq[i * qrow + e] != 0.0f;
        want_covered.out[i * qrow + e] = got.out[i * qrow + e];
        want_covered.dq[i * qrow + e] = got.dq[i * qrow + e];
      }
  for (int64_t j = 0; j < c.tk; ++j)
    if (!k_covered[j])
      for (int64_t e = 0; e < krow; ++e) {
        uncovered_errors += got.dk[j * krow + e] != 0.0f;
        uncovered_errors += got.dv[j * krow + e] != 0.0f;
        want_covered.dk[j * krow + e] = got.dk[j * krow + e];
        want_covered.dv[j * krow + e] = got.dv[j * krow + e];
      }
  EXPECT_EQ(uncovered_errors, 0) << c.name << ": rows outside the layout were written";
  for (int64_t i = 0; i < c.tq; ++i)
    if (!q_covered[i])
      for (int64_t h = 0; h < c.hq; ++h) want_covered.lse[i * c.hq + h] = got.lse[i * c.hq + h];

  const double fp32_sum = c.fp32_sum_allowance();
  expect_within(got.out, want_covered.out, mag.out, fp32_sum, "flash forward out " + c.name);
  int64_t max_keys = 1;
  for (const SeqSpan& s : c.seqs) max_keys = std::max<int64_t>(max_keys, s.k_len);
  const double lse_allowance = std::max(0x1p-16, 2.0 * max_keys * 0x1p-24);
  double lse_err = 0;
  for (size_t i = 0; i < got.lse.size(); ++i) {
    const double err = std::fabs(double(got.lse[i]) - want_covered.lse[i]);
    lse_err = std::max(lse_err, err);
    EXPECT_LE(err, lse_allowance * (1 + std::fabs(want_covered.lse[i]))) << c.name << " lse " << i;
  }
  std::printf("[ max-err  ] %-52s %.3e\n", ("flash forward lse " + c.name).c_str(), lse_err);
  expect_within(got.dq, want_covered.dq, mag.dq, fp32_sum, "flash backward dq " + c.name);
  expect_within(got.dk, want_covered.dk, mag.dk, fp32_sum, "flash backward dk " + c.name);
  expect_within(got.dv, want_covered.dv, mag.dv, fp32_sum, "flash backward dv " + c.name);
}

// A training pack: sequences of the given lengths back to back, then `spare` rows outside.
Case training_pack(std::string name, int64_t hq, int64_t hkv, int64_t dim, std::vector<int> lengths,
                   int spare) {
  Case c{std::move(name), hq, hkv, dim, 0, 0, {}};
  int begin = 0;
  for (int len : lengths) {
    c.seqs.push_back({begin, len, begin, len});
    begin += len;
  }
  c.tq = c.tk = begin + spare;
  return c;
}

// A decode batch over a KV cache of `slot_len` rows per sequence: sequence s has q_len[s] new
// queries (packed) and k_len[s] cached keys (its slot's first rows; the rest are NaN).
Case decode_batch(std::string name, int64_t hq, int64_t hkv, int64_t dim, std::vector<int> q_len,
                  std::vector<int> k_len, int slot_len) {
  Case c{std::move(name), hq, hkv, dim, 0, 0, {}};
  int q_begin = 0;
  for (size_t s = 0; s < q_len.size(); ++s) {
    c.seqs.push_back({q_begin, q_len[s], static_cast<int>(s) * slot_len, k_len[s]});
    q_begin += q_len[s];
  }
  c.tq = q_begin;
  c.tk = static_cast<int64_t>(q_len.size()) * slot_len;
  return c;
}

TEST_F(CudaOpsTest, FlashAttentionRaggedPackMatchesCpu) {
  // SmolLM2's heads (9 q, 3 kv, D 64); lengths cross the 64-row tiles in every way: one token,
  // a partial tile, exactly one tile plus one, three tiles; two rows outside the layout.
  run_case(*dev_, *cpu_, training_pack("ragged 1+70+5+129+17", 9, 3, 64, {1, 70, 5, 129, 17}, 2));
}

TEST_F(CudaOpsTest, FlashAttentionEveryGqaGroupingMatchesCpu) {
  for (auto [hq, hkv] : {std::pair{3, 3}, std::pair{6, 2}, std::pair{9, 1}})
    run_case(*dev_, *cpu_,
             training_pack("group " + std::to_string(hq / hkv) + " (" + std::to_string(hq) + "/" +
                               std::to_string(hkv) + ") 40+77",
                           hq, hkv, 64, {40, 77}, 0));
}

TEST_F(CudaOpsTest, FlashAttentionHeadDims80And128MatchCpu) {
  for (int dim : {80, 128})
    run_case(*dev_, *cpu_,
             training_pack("D " + std::to_string(dim) + " 65+9", 2, 1, dim, {65, 9}, 1));
}

TEST_F(CudaOpsTest, FlashAttentionLongSequenceMatchesCpu) {
  // The longest this suite affords on cuda-emu: 320 tokens = 5 query tiles × 5 key tiles.
  run_case(*dev_, *cpu_, training_pack("long 320", 3, 1, 64, {320}, 0));
}

// The longest supported length (docs/design.md §2.5): the engine bounds every sequence by the
// model's context, max_position_embeddings, 8192 for SmolLM2; the kernels have no length-
// dependent resource below int32 row indices. One head of 16 keeps it affordable on cuda-emu.
constexpr int kLongestSupportedLength = 8192;

TEST_F(CudaOpsTest, FlashAttentionAtTheLongestSupportedLengthMatchesCpu) {
  // The last 256 queries of an 8192-token sequence over all its keys (bottom-right aligned, the
  // layout of a chunked prefill): every length-dependent path of the kernels at the maximum —
  // positions up to 8191, query tiles walking all 128 key tiles, dK/dV blocks of every key tile,
  // fp32 sums of 8192 terms — at 1/32 of the square's work (the square's forward alone takes
  // 23 s on cuda-emu, measured; it runs on a real GPU below).
  Case tail{"longest: last 256 of " + std::to_string(kLongestSupportedLength) + " (1 head D 16)",
            1,
            1,
            16,
            256,
            kLongestSupportedLength,
            {{0, 256, 0, kLongestSupportedLength}}};
  run_case(*dev_, *cpu_, tail);
  if (device_under_test() != "cuda-emu")
    run_case(*dev_, *cpu_,
             training_pack("longest " + std::to_string(kLongestSupportedLength) + " (1 head D 16)",
                           1, 1, 16, {kLongestSupportedLength}, 0));
}

TEST_F(CudaOpsTest, FlashAttentionSquareLongSequenceMatchesCpu) {
  // A training sequence (q_len = k_len) as long as cuda-emu affords with one head of 16, plus
  // a short one behind it in the same pack.
  run_case(*dev_, *cpu_, training_pack("long 2048+3 (1 head D 16)", 1, 1, 16, {2048, 3}, 0));
}

TEST_F(CudaOpsTest, FlashAttentionRefusesMoreHeadsThanALaunchGridHolds) {
  // 65536 query heads of one token: the grid's y dimension (heads) holds 65535, so the kernels
  // cannot be launched; one clear error instead of a launch failure on a GPU.
  const int64_t heads = 65536, dim = 16;
  const std::vector<float> zeros(heads * dim, 0.0f);
  Owned q = make_tensor(*dev_, zeros, {1, heads, dim}, DType::BF16);
  Owned k = make_tensor(*dev_, zeros, {1, heads, dim}, DType::BF16);
  Owned v = make_tensor(*dev_, zeros, {1, heads, dim}, DType::BF16);
  Owned out = make_tensor(*dev_, zeros, {1, heads, dim}, DType::BF16);
  Owned lse = make_tensor(*dev_, std::vector<float>(heads, 0.0f), {1, heads}, DType::F32);
  AttentionLayout layout;
  layout.seqs = {{0, 1, 0, 1}};
  layout.max_q_len = layout.max_k_len = 1;
  try {
    dev_->attention_forward(out.tensor, lse.tensor, q.tensor, k.tensor, v.tensor, layout, 0.25f);
    FAIL() << "65536 heads were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention_forward: 65536 heads exceed the 65535"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(CudaOpsTest, FlashAttentionDecodeMatchesCpu) {
  // One new token per sequence over 1, 64, 129 and 300 cached keys (1 to 3 splits of 128 keys),
  // and a sequence with no new token (its 50 keys are seen by nobody: dk = dv = 0); the cache
  // slots are 320 rows, the unused ones NaN.
  run_case(*dev_, *cpu_,
           decode_batch("decode 1 token, k 1/64/129/300 (+0 of 50)", 9, 3, 64, {1, 1, 0, 1, 1},
                        {1, 64, 50, 129, 300}, 320));
  // Several new tokens per sequence (3 and 5 tokens × 3 heads ≤ 16 rows): causal inside a split.
  run_case(*dev_, *cpu_,
           decode_batch("decode 3+5 tokens, k 200/140", 9, 3, 64, {3, 5}, {200, 140}, 256));
}

TEST_F(CudaOpsTest, FlashAttentionIsDeterministic) {
  const Case c = training_pack("determinism 100+30", 9, 3, 64, {100, 30}, 0);
  const Inputs in = make_inputs(c);
  const Results a = run(*dev_, DType::BF16, c, in, nullptr);
  const Results b = run(*dev_, DType::BF16, c, in, nullptr);
  auto same_bits = [](const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  EXPECT_TRUE(same_bits(a.out, b.out));
  EXPECT_TRUE(same_bits(a.lse, b.lse));
  EXPECT_TRUE(same_bits(a.dq, b.dq));
  EXPECT_TRUE(same_bits(a.dk, b.dk));
  EXPECT_TRUE(same_bits(a.dv, b.dv));
  const Case d = decode_batch("determinism decode", 9, 3, 64, {1, 2}, {300, 257}, 320);
  const Inputs din = make_inputs(d);
  const Results da = run(*dev_, DType::BF16, d, din, nullptr);
  const Results db = run(*dev_, DType::BF16, d, din, nullptr);
  EXPECT_TRUE(same_bits(da.out, db.out));
  EXPECT_TRUE(same_bits(da.lse, db.lse));
}

// ---- fused RoPE backward (Backend::attention_rope_backward, docs/design.md §2.7) -------------
// dq and dk with respect to the un-rotated q and k: the flash kernels rotate their fp32
// accumulators by −angle before the one store; the default (cpu, and cuda off the flash path) is
// attention_backward then rope_qk_backward.

enum class RopeBackward { Fused, Plain, Composed };

// On `b`: the backward from the given out and lse (the device's forward), as `mode` says:
// Fused = attention_rope_backward, Plain = attention_backward alone, Composed = attention_backward
// then rope_qk_backward (what Fused must equal up to its one rounding instead of two).
Results rope_backward_run(Backend& b, DType dt, const Case& c, const Inputs& in, const Results& fwd,
                          const std::vector<float>& positions, float theta, RopeBackward mode) {
  const AttentionLayout layout = make_layout(c);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
  const Shape sq{c.tq, c.hq, c.dim}, sk{c.tk, c.hkv, c.dim};
  Owned q = make_tensor(b, in.q, sq, dt), k = make_tensor(b, in.k, sk, dt),
        v = make_tensor(b, in.v, sk, dt), dy = make_tensor(b, in.dout, sq, dt);
  Owned out = make_tensor(b, fwd.out, sq, dt);
  Owned lse = make_tensor(b, fwd.lse, {c.tq, c.hq}, DType::F32);
  Owned pos = make_tensor(b, positions, {c.tq}, DType::I32);
  Owned dq = make_tensor(b, std::vector<float>(c.tq * c.hq * c.dim, 7.0f), sq, dt);
  Owned dk = make_tensor(b, std::vector<float>(c.tk * c.hkv * c.dim, 7.0f), sk, dt);
  Owned dv = make_tensor(b, std::vector<float>(c.tk * c.hkv * c.dim, 7.0f), sk, dt);
  if (mode == RopeBackward::Fused) {
    b.attention_rope_backward(dq.tensor, dk.tensor, dv.tensor, dy.tensor, q.tensor, k.tensor,
                              v.tensor, out.tensor, lse.tensor, layout, scale,
                              Backend::Rotary{pos.tensor, theta});
  } else {
    b.attention_backward(dq.tensor, dk.tensor, dv.tensor, dy.tensor, q.tensor, k.tensor, v.tensor,
                         out.tensor, lse.tensor, layout, scale);
    if (mode == RopeBackward::Composed) b.rope_qk_backward(dq.tensor, dk.tensor, pos.tensor, theta);
  }
  Results r;
  r.dq = read(b, dq.tensor);
  r.dk = read(b, dk.tensor);
  r.dv = read(b, dv.tensor);
  return r;
}

// Each element's pair partner (column i ↔ i ± D/2 of the same head row) plus itself: what a
// rotation mixes into an element, so the bound of an un-rotated value becomes the sum of the
// pair's bounds (|cos|, |sin| ≤ 1).
std::vector<float> pair_sum(const std::vector<float>& x, int64_t dim) {
  std::vector<float> out(x.size());
  const int64_t half = dim / 2;
  for (size_t e = 0; e < x.size(); ++e) {
    const int64_t col = static_cast<int64_t>(e) % dim;
    const size_t partner = col < half ? e + half : e - half;
    out[e] = std::fabs(x[e]) + std::fabs(x[partner]);
  }
  return out;
}

void run_rope_case(Backend& dev, Backend& cpu, const Case& c, const std::vector<float>& positions) {
  ASSERT_EQ(c.tq, c.tk) << "a RoPE'd backward shares q's and k's token rows";
  const float theta = 10000.0f;
  const Inputs in = make_inputs(c);
  const Results fwd = run(dev, DType::BF16, c, in, nullptr);  // the device's out and lse
  const Results fused =
      rope_backward_run(dev, DType::BF16, c, in, fwd, positions, theta, RopeBackward::Fused);
  const Results plain =
      rope_backward_run(dev, DType::BF16, c, in, fwd, positions, theta, RopeBackward::Plain);
  const Results composed =
      rope_backward_run(dev, DType::BF16, c, in, fwd, positions, theta, RopeBackward::Composed);
  const Results want =
      rope_backward_run(cpu, DType::F32, c, in, fwd, positions, theta, RopeBackward::Fused);

  // 1. Against the composition on the same device. Both start from the same fp32 accumulator
  // x (same kernels, same order); fused = rnd(Rᵀx), composed = rnd(Rᵀ rnd(x)). The difference:
  // the fused rounding (≤ 2^-9·|fused|), the composition's final rounding (≤ 2^-9·|composed|)
  // and its first rounding rotated (≤ 2^-9·(|x_i| + |x_partner|), x ≈ the plain backward's
  // values): kU = 2^-8 per term, twice the real 2^-9, which also covers the fp32 rotation
  // (≤ 2^-22 of the pair) and the (1 + 2^-8) between x and its rounding. dv: the same kernel,
  // bit for bit.
  auto expect_one_rounding_apart = [&](const std::vector<float>& f, const std::vector<float>& comp,
                                       const std::vector<float>& pl, const std::string& what) {
    ASSERT_EQ(f.size(), comp.size()) << what;
    const std::vector<float> pair = pair_sum(pl, c.dim);
    double max_err = 0, max_ratio = 0;
    int64_t bad = 0;
    for (size_t e = 0; e < f.size(); ++e) {
      const double err = std::fabs(double(f[e]) - comp[e]);
      const double allowed = kU * (std::fabs(f[e]) + std::fabs(comp[e]) + pair[e]) + 1e-6;
      bad += !(err <= allowed);
      max_err = std::max(max_err, err);
      max_ratio = std::max(max_ratio, err / allowed);
    }
    EXPECT_EQ(bad, 0) << what << ": elements beyond one rounding's difference";
    std::printf("[ max-err  ] %-52s %.3e (%.2f of the allowance)\n", what.c_str(), max_err,
                max_ratio);
  };
  expect_one_rounding_apart(fused.dq, composed.dq, plain.dq, "fused vs composed dq " + c.name);
  expect_one_rounding_apart(fused.dk, composed.dk, plain.dk, "fused vs composed dk " + c.name);
  EXPECT_EQ(fused.dv, plain.dv) << c.name << ": dv must not change";

  // 2. Against cpu's default (attention_backward then rope_qk_backward in fp32). The un-rotated
  // device value is within (u + fp32_sum)·mag of cpu's before its rounding (the bound of
  // run_case, whose u·|dq| term is the store's rounding); rotated, a pair's errors mix
  // (|cos|, |sin| ≤ 1): (u + fp32_sum)·(mag_i + mag_partner); then the fused store's one
  // rounding, u·|want|. sincosf vs the cpu's cos/sin (≤ 2 ulps, 2^-22 of the pair) is inside the
  // fp32 allowance (≥ 2^-14, and mag ≥ |x|).
  const Results mag = reference_magnitudes(c, in, fwd.out);
  const double fp32_sum = c.fp32_sum_allowance();
  expect_within(fused.dq, want.dq, pair_sum(mag.dq, c.dim), fp32_sum, "fused rope dq " + c.name);
  expect_within(fused.dk, want.dk, pair_sum(mag.dk, c.dim), fp32_sum, "fused rope dk " + c.name);
  expect_within(fused.dv, want.dv, mag.dv, fp32_sum, "fused rope dv " + c.name);
}

// Positions of a training pack: each sequence restarts at `first[s]` (0 for a fresh sequence,
// larger for a continuation, as a decode-like offset); rows outside the layout get 3.
std::vector<float> pack_positions(const Case& c, const std::vector<int>& first) {
  std::vector<float> positions(c.tq, 3.0f);
  for (size_t s = 0; s < c.seqs.size(); ++s)
    for (int i = 0; i < c.seqs[s].q_len; ++i)
      positions[c.seqs[s].q_begin + i] = static_cast<float>(first[s] + i);
  return positions;
}

TEST_F(CudaOpsTest, FusedRopeBackwardRaggedPackMatchesComposition) {
  // SmolLM2's heads; one-token, partial-tile and tile-crossing sequences whose positions restart
  // at 0 or start far from it (a continuation, as after a KV cache); a row outside the layout.
  const Case c = training_pack("rope ragged 1+70+5+17", 9, 3, 64, {1, 70, 5, 17}, 1);
  run_rope_case(*dev_, *cpu_, c, pack_positions(c, {0, 517, 0, 8000}));
}

TEST_F(CudaOpsTest, FusedRopeBackwardEveryGqaGroupingMatchesComposition) {
  for (auto [hq, hkv] : {std::pair{3, 3}, std::pair{6, 2}, std::pair{9, 1}}) {
    const Case c = training_pack("rope group " + std::to_string(hq / hkv) + " 40+27", hq, hkv, 64,
                                 {40, 27}, 0);
    run_rope_case(*dev_, *cpu_, c, pack_positions(c, {0, 100}));
  }
}

TEST_F(CudaOpsTest, FusedRopeBackwardHeadDims80And128MatchComposition) {
  for (int dim : {80, 128}) {
    const Case c = training_pack("rope D " + std::to_string(dim) + " 65+9", 2, 1, dim, {65, 9}, 1);
    run_rope_case(*dev_, *cpu_, c, pack_positions(c, {0, 40}));
  }
}

TEST_F(CudaOpsTest, FusedRopeBackwardOffTheFlashPathIsTheComposition) {
  // F32 tensors take the simple kernels, which do not rotate: the backend runs the default
  // composition, bit for bit attention_backward then rope_qk_backward.
  const Case c = training_pack("rope f32 9+5", 2, 1, 16, {9, 5}, 1);
  const Inputs in = make_inputs(c);
  const std::vector<float> positions = pack_positions(c, {4, 0});
  const Results fwd = run(*dev_, DType::F32, c, in, nullptr);
  const Results fused =
      rope_backward_run(*dev_, DType::F32, c, in, fwd, positions, 500.0f, RopeBackward::Fused);
  const Results composed =
      rope_backward_run(*dev_, DType::F32, c, in, fwd, positions, 500.0f, RopeBackward::Composed);
  EXPECT_EQ(fused.dq, composed.dq);
  EXPECT_EQ(fused.dk, composed.dk);
  EXPECT_EQ(fused.dv, composed.dv);
}

TEST_F(CudaOpsTest, FusedRopeBackwardRefusesQAndKOfDifferentTokens) {
  // A decode layout (q_len < k_len: q and k rows differ) has no single token index per row.
  const int64_t dim = 16;
  Owned q = make_tensor(*dev_, std::vector<float>(2 * dim, 0.0f), {2, 1, dim}, DType::BF16);
  Owned k = make_tensor(*dev_, std::vector<float>(5 * dim, 0.0f), {5, 1, dim}, DType::BF16);
  Owned v = make_tensor(*dev_, std::vector<float>(5 * dim, 0.0f), {5, 1, dim}, DType::BF16);
  Owned dq = make_tensor(*dev_, std::vector<float>(2 * dim, 0.0f), {2, 1, dim}, DType::BF16);
  Owned dk = make_tensor(*dev_, std::vector<float>(5 * dim, 0.0f), {5, 1, dim}, DType::BF16);
  Owned dv = make_tensor(*dev_, std::vector<float>(5 * dim, 0.0f), {5, 1, dim}, DType::BF16);
  Owned lse = make_tensor(*dev_, std::vector<float>(2, 0.0f), {2, 1}, DType::F32);
  Owned pos = make_tensor(*dev_, std::vector<float>(2, 0.0f), {2}, DType::I32);
  AttentionLayout layout;
  layout.seqs = {{0, 2, 0, 5}};
  layout.max_q_len = 2;
  layout.max_k_len = 5;
  try {
    dev_->attention_rope_backward(dq.tensor, dk.tensor, dv.tensor, dq.tensor, q.tensor, k.tensor,
                                  v.tensor, q.tensor, lse.tensor, layout, 0.25f,
                                  Backend::Rotary{pos.tensor, 10000.0f});
    FAIL() << "q and k of different token counts were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention_rope_backward"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace smol::test

// The public ops of Backend (kernels/backend.h): each checks its contract once for every
// backend — shapes, dtypes, argument ranges — tells the OpHook, and calls the backend's
// do_<op>. The checks used to be repeated in kernels/cpu/cpu_checks.h and in each cuda op file;
// what stays there is only what a backend alone knows (sizes its kernels cannot handle).
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <string_view>

#include "kernels/backend.h"
#include "kernels/backend_checks.h"
#include "kernels/token_sampling.h"

namespace smol {

using namespace contract;

namespace {
// A weight operand: a float tensor, or BF16 where the backend accepts bf16 weights
// (Backend::accepts_bf16_weights).
void check_weight(const Backend& backend, const char* op, const char* arg, const Tensor& t) {
  if (t.dtype == DType::BF16 && backend.accepts_bf16_weights())
    check_data(op, arg, t);
  else
    check_float(backend, op, arg, t);
}
}  // namespace

// Before/after calls to the hook around one op; nesting depth for composite ops.
class Backend::HookScope {
 public:
  HookScope(Backend& backend, const char* op) : backend_(backend), op_(op) {
    depth_ = backend_.depth_++;
    if (backend_.hook_) backend_.hook_->before_op(backend_, op_, depth_);
  }
  ~HookScope() {
    --backend_.depth_;
    if (backend_.hook_) backend_.hook_->after_op(backend_, op_, depth_);
  }
  HookScope(const HookScope&) = delete;
  HookScope& operator=(const HookScope&) = delete;

 private:
  Backend& backend_;
  const char* op_;
  int depth_ = 0;
};

// ---- memory ------------------------------------------------------------------------------------

Buffer Backend::allocate(size_t bytes) {
  Buffer buffer = do_allocate(bytes);
  if (buffer.data()) {
    allocation_bytes_[buffer.data()] = bytes;
    memory_.in_use += bytes;
    memory_.peak = std::max(memory_.peak, memory_.in_use);
  }
  return buffer;
}
void Backend::release(void* data) {
  if (const auto it = allocation_bytes_.find(data); it != allocation_bytes_.end()) {
    memory_.in_use -= it->second;
    allocation_bytes_.erase(it);
  }
  do_release(data);
}

void Backend::upload(Tensor dst, const void* host) {
  check_data("upload", "dst", dst);
  SMOL_CHECK(host != nullptr || dst.numel() == 0, "upload: null host pointer for ",
             dst.shape.str());
  HookScope scope(*this, "upload");
  if (dst.bytes() > 0) do_upload(dst, host);
}

void Backend::download(void* host, const Tensor& src) {
  check_data("download", "src", src);
  SMOL_CHECK(host != nullptr || src.numel() == 0, "download: null host pointer for ",
             src.shape.str());
  HookScope scope(*this, "download");
  if (src.bytes() > 0) do_download(host, src);
}

// Not reported to the hook: a hook may itself synchronise (to time an op) and is not an op.
double Backend::elapsed_ms(void*, void*) {
  throw_error("elapsed_ms: backend ", name(),
              " has no timing events (record_timing_event gave none)");
}

void Backend::synchronize() {
  do_synchronize();
}

void Backend::fill_zero(Tensor t) {
  SMOL_CHECK(t.data != nullptr || t.numel() == 0, "fill_zero: tensor ", t.shape.str(),
             " has no data (null pointer)");
  HookScope scope(*this, "fill_zero");
  if (t.bytes() > 0) do_fill_zero(t);
}

void Backend::copy(Tensor dst, const Tensor& src) {
  SMOL_CHECK(dst.numel() == src.numel(), "copy: dst ", dst.shape.str(), " and src ",
             src.shape.str(), " have different sizes");
  SMOL_CHECK((dst.data && src.data) || dst.numel() == 0, "copy: null data pointer");
  // Casts are between the two float storage types (every backend can hold bf16 data).
  SMOL_CHECK(dst.dtype == src.dtype || (dst.dtype != DType::I32 && src.dtype != DType::I32),
             "copy: cannot cast ", dtype_name(src.dtype), " to ", dtype_name(dst.dtype));
  HookScope scope(*this, "copy");
  if (dst.numel() > 0) do_copy(dst, src);
}

// ---- row copies --------------------------------------------------------------------------------

namespace {
// dst [R, W] and src [N, W] of one dtype, index I32 [N]: the shared contract of the row copies.
void check_row_copy(const char* op, const Tensor& dst, const Tensor& src, const Tensor& index,
                    const char* indexed) {
  check_rank(op, "dst", dst, 2, "[rows, width]");
  check_rank(op, "src", src, 2, "[rows, width]");
  check_data(op, "dst", dst);
  check_data(op, "src", src);
  check_i32(op, "index", index);
  SMOL_CHECK(dst.dtype == src.dtype, op, ": dst ", dtype_name(dst.dtype), " ", dst.shape.str(),
             " and src ", dtype_name(src.dtype), " ", src.shape.str(),
             " must have the same dtype (rows are copied bit for bit)");
  SMOL_CHECK(dst.shape[1] == src.shape[1], op, ": dst ", dst.shape.str(), " and src ",
             src.shape.str(), " must have the same row width");
  const Tensor& counted = std::string_view(indexed) == "dst" ? src : dst;
  check_vector(op, "index", index, counted.shape[0]);
}
}  // namespace

void Backend::scatter_rows(std::span<const RowScatter> pairs, const Tensor& index) {
  const char* op = "scatter_rows";
  SMOL_CHECK(!pairs.empty() && pairs.size() <= kMaxScatterPairs, op, ": ", pairs.size(),
             " pairs (1..", kMaxScatterPairs, ")");
  for (const RowScatter& p : pairs) {
    check_row_copy(op, p.dst, p.src, index, "dst");
    SMOL_CHECK(p.src.shape == pairs[0].src.shape && p.dst.shape == pairs[0].dst.shape &&
                   p.dst.dtype == pairs[0].dst.dtype,
               op, ": every pair must match the first (dst ", pairs[0].dst.shape.str(), ", src ",
               pairs[0].src.shape.str(), "), got dst ", p.dst.shape.str(), ", src ",
               p.src.shape.str());
  }
  HookScope scope(*this, op);
  if (index.numel() > 0) do_scatter_rows(pairs, index);
}

void Backend::gather_rows(Tensor dst, const Tensor& src, const Tensor& index) {
  check_row_copy("gather_rows", dst, src, index, "src");
  HookScope scope(*this, "gather_rows");
  if (index.numel() > 0) do_gather_rows(dst, src, index);
}

// ---- graphs ------------------------------------------------------------------------------------

void Backend::run_as_graph(std::unique_ptr<Graph>& graph, const std::function<void()>& work) {
  SMOL_CHECK(static_cast<bool>(work), "run_as_graph: no work given");
  // An OpHook watches ops as they run (timers synchronise after each): recorded ops would not run
  // where it looks, so with a hook installed the work runs eagerly.
  if (hook_) {
    work();
    return;
  }
  do_run_as_graph(graph, work);
}

void Backend::do_run_as_graph(std::unique_ptr<Graph>& graph, const std::function<void()>& work) {
  (void)graph;
  work();
}

// ---- dense linear algebra ----------------------------------------------------------------------

namespace {
// c [m, n] = op(a) [m, k] · op(b) [k, n]: the shapes every matmul form checks.
void check_matmul_shapes(const char* op, const Tensor& c, const Tensor& a, const Tensor& b,
                         Transpose ta, Transpose tb) {
  const int64_t m = ta == Transpose::No ? a.shape.rows() : a.shape.cols();
  const int64_t k = ta == Transpose::No ? a.shape.cols() : a.shape.rows();
  const int64_t kb = tb == Transpose::No ? b.shape.rows() : b.shape.cols();
  const int64_t n = tb == Transpose::No ? b.shape.cols() : b.shape.rows();
  SMOL_CHECK(k == kb, op, ": inner dimensions differ: op(a) of ", a.shape.str(), " is ", m, "x", k,
             ", op(b) of ", b.shape.str(), " is ", kb, "x", n);
  SMOL_CHECK(c.shape.rows() == m && c.shape.cols() == n, op, ": c ", c.shape.str(), " must be [", m,
             ", ", n, "] for op(a) ", m, "x", k, " and op(b) ", kb, "x", n);
}
}  // namespace

void Backend::matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
                     float alpha, float beta) {
  check_float(*this, "matmul", "c", c);
  check_float(*this, "matmul", "a", a);
  check_weight(*this, "matmul", "b", b);
  check_matmul_shapes("matmul", c, a, b, ta, tb);
  HookScope scope(*this, "matmul");
  do_matmul(c, a, b, ta, tb, alpha, beta);
}

namespace {
bool overlap(const Tensor& x, const Tensor& y) {
  const auto *x0 = static_cast<const char*>(x.data), *y0 = static_cast<const char*>(y.data);
  return x.bytes() > 0 && y.bytes() > 0 && x0 < y0 + y.bytes() && y0 < x0 + x.bytes();
}
}  // namespace

void Backend::matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
                     float alpha, float beta, const Tensor& addend) {
  if (addend.data == c.data && addend.dtype == c.dtype && addend.shape == c.shape) {
    matmul(c, a, b, ta, tb, alpha, beta);  // the addend is c: the plain op
    return;
  }
  const char* op = "matmul";
  check_float(*this, op, "c", c);
  check_float(*this, op, "a", a);
  check_weight(*this, op, "b", b);
  check_float(*this, op, "addend", addend);
  check_matmul_shapes("matmul", c, a, b, ta, tb);
  check_same_shape(op, "addend", addend, "c", c);
  SMOL_CHECK(addend.dtype == c.dtype, "matmul: addend is ", dtype_name(addend.dtype), ", c is ",
             dtype_name(c.dtype), " (the addend must have c's dtype)");
  SMOL_CHECK(!overlap(addend, c), "matmul: addend overlaps c without being c");
  SMOL_CHECK(!overlap(c, a) && !overlap(c, b), "matmul: c overlaps an operand (a or b)");
  SMOL_CHECK(!overlap(addend, a) && !overlap(addend, b),
             "matmul: addend overlaps an operand (a or b)");
  HookScope scope(*this, op);
  do_matmul_addend(c, a, b, ta, tb, alpha, beta, addend);
}

void Backend::matmul_batched(std::span<const Tensor> cs, std::span<const Tensor> as,
                             std::span<const Tensor> bs, Transpose ta, Transpose tb, float alpha,
                             float beta) {
  const char* op = "matmul_batched";
  const size_t n = cs.size();
  SMOL_CHECK(n > 0, op, ": no products");
  SMOL_CHECK((as.size() == n || as.size() == 1) && (bs.size() == n || bs.size() == 1), op, ": ", n,
             " outputs need ", n, " (or one shared) a and b operands, got ", as.size(), " and ",
             bs.size());
  for (size_t i = 0; i < n; ++i) {
    const Tensor& c = cs[i];
    const Tensor& a = as[as.size() == 1 ? 0 : i];
    const Tensor& b = bs[bs.size() == 1 ? 0 : i];
    check_float(*this, op, "c", c);
    check_float(*this, op, "a", a);
    check_weight(*this, op, "b", b);
    SMOL_CHECK(c.shape == cs[0].shape && c.dtype == cs[0].dtype && a.shape == as[0].shape &&
                   a.dtype == as[0].dtype && b.shape == bs[0].shape && b.dtype == bs[0].dtype,
               op, ": product ", i, " differs in shape or dtype from product 0 (c ", c.shape.str(),
               ", a ", a.shape.str(), ", b ", b.shape.str(), ")");
    for (size_t j = 0; j < i; ++j)
      SMOL_CHECK(!overlap(c, cs[j]), op, ": outputs ", j, " and ", i, " overlap");
    for (const Tensor& x : as) SMOL_CHECK(!overlap(c, x), op, ": output ", i, " overlaps an a");
    for (const Tensor& x : bs) SMOL_CHECK(!overlap(c, x), op, ": output ", i, " overlaps a b");
  }
  check_matmul_shapes(op, cs[0], as[0], bs[0], ta, tb);
  HookScope scope(*this, op);
  do_matmul_batched(cs, as, bs, ta, tb, alpha, beta);
}

void Backend::do_matmul_batched(std::span<const Tensor> cs, std::span<const Tensor> as,
                                std::span<const Tensor> bs, Transpose ta, Transpose tb, float alpha,
                                float beta) {
  for (size_t i = 0; i < cs.size(); ++i)
    do_matmul(cs[i], as[as.size() == 1 ? 0 : i], bs[bs.size() == 1 ? 0 : i], ta, tb, alpha, beta);
}

void Backend::do_matmul_addend(Tensor c, const Tensor& a, const Tensor& b, Transpose ta,
                               Transpose tb, float alpha, float beta, const Tensor& addend) {
  if (c.numel() > 0) do_copy(c, addend);
  do_matmul(c, a, b, ta, tb, alpha, beta);
}

void Backend::matmul_quantized(Tensor y, const Tensor& x, const QuantMatrix& w) {
  matmul_quantized(std::span<const Tensor>(&y, 1), x, std::span<const QuantMatrix>(&w, 1));
}

void Backend::matmul_quantized(std::span<const Tensor> ys, const Tensor& x,
                               std::span<const QuantMatrix> ws) {
  SMOL_CHECK(ys.size() == ws.size() && !ws.empty() && ws.size() <= kMaxQuantGroup,
             "matmul_quantized: ", ys.size(), " outputs for ", ws.size(),
             " matrices (want the same number, 1 to ", kMaxQuantGroup, ")");
  check_dtype("matmul_quantized", "x", x, DType::F32);
  for (size_t i = 0; i < ws.size(); ++i) {
    const QuantMatrix& w = ws[i];
    const Tensor& y = ys[i];
    const QuantFormatTraits traits = quant_format_traits(w.format);
    SMOL_CHECK(supports_quantized(w.format), "matmul_quantized: the ", name(),
               " backend has no kernel for ", traits.name, " weights");
    check_dtype("matmul_quantized", "y", y, DType::F32);
    SMOL_CHECK(w.rows >= 0 && w.cols > 0 && w.cols % traits.block_elems == 0,
               "matmul_quantized: W [", w.rows, ", ", w.cols, "] must have a positive number of ",
               "columns that is a multiple of the ", traits.name, " block size ",
               traits.block_elems);
    SMOL_CHECK(w.format != QuantFormat::Q4_1_R2 || can_pair_q4_1(w.cols),
               "matmul_quantized: Q4_1 block pairs need a multiple of 64 columns, W has ", w.cols);
    SMOL_CHECK(w.blocks != nullptr || w.rows == 0,
               "matmul_quantized: W has no data (null pointer)");
    SMOL_CHECK(x.shape.cols() == w.cols, "matmul_quantized: x ", x.shape.str(), " has ",
               x.shape.cols(), " columns, W [", w.rows, ", ", w.cols, "] has ", w.cols);
    SMOL_CHECK(y.shape.rows() == x.shape.rows() && y.shape.cols() == w.rows, "matmul_quantized: y ",
               y.shape.str(), " must be [", x.shape.rows(), ", ", w.rows, "]");
    SMOL_CHECK((x.data && y.data) || y.numel() == 0, "matmul_quantized: null data pointer");
    const auto* yb = static_cast<const char*>(y.data);
    const auto* xb = static_cast<const char*>(x.data);
    SMOL_CHECK(yb + y.bytes() <= xb || xb + x.bytes() <= yb || y.numel() == 0,
               "matmul_quantized: y and x overlap");
  }
  HookScope scope(*this, "matmul_quantized");
  if (x.shape.rows() > 0) do_matmul_quantized(ys, x, ws);
}

void Backend::do_matmul_quantized(std::span<const Tensor> ys, const Tensor& x,
                                  std::span<const QuantMatrix> ws) {
  (void)ys, (void)x;
  throw_error("matmul_quantized: the ", name(), " backend has no kernel for ",
              quant_format_traits(ws.front().format).name, " weights");
}

void Backend::axpy(Tensor y, const Tensor& x, float alpha) {
  check_float(*this, "axpy", "y", y);
  check_float(*this, "axpy", "x", x);
  check_same_shape("axpy", "y", y, "x", x);
  HookScope scope(*this, "axpy");
  do_axpy(y, x, alpha);
}

void Backend::scale(Tensor x, float alpha) {
  check_float(*this, "scale", "x", x);
  HookScope scope(*this, "scale");
  do_scale(x, alpha);
}

// ---- model ops ---------------------------------------------------------------------------------

void Backend::embedding_forward(Tensor out, const Tensor& ids, const Tensor& table) {
  const char* op = "embedding_forward";
  check_float(*this, op, "out", out);
  check_i32(op, "ids", ids);
  check_weight(*this, op, "table", table);
  SMOL_CHECK(table.shape.cols() == out.shape.cols(), op, ": out ", out.shape.str(), " and table ",
             table.shape.str(), " must have the same width");
  check_vector(op, "ids", ids, out.shape.rows());
  HookScope scope(*this, op);
  do_embedding_forward(out, ids, table);
}

void Backend::embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids) {
  const char* op = "embedding_backward";
  check_float(*this, op, "dtable", dtable);
  check_float(*this, op, "dout", dout);
  check_i32(op, "ids", ids);
  SMOL_CHECK(dtable.shape.cols() == dout.shape.cols(), op, ": dout ", dout.shape.str(),
             " and dtable ", dtable.shape.str(), " must have the same width");
  check_vector(op, "ids", ids, dout.shape.rows());
  HookScope scope(*this, op);
  do_embedding_backward(dtable, dout, ids);
}

namespace {
void check_norm(const Backend& be, const char* op, const Tensor& out, const Tensor& rstd,
                const Tensor& x, const Tensor& weight) {
  check_float(be, op, "out", out);
  check_dtype(op, "rstd", rstd, DType::F32);
  check_float(be, op, "x", x);
  check_float(be, op, "weight", weight);
  check_same_shape(op, "out", out, "x", x);
  SMOL_CHECK(weight.numel() == x.shape.cols(), op, ": weight ", weight.shape.str(),
             " must have one element per channel of x ", x.shape.str());
  check_vector(op, "rstd", rstd, x.shape.rows());
}
}  // namespace

void Backend::rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight,
                              float eps) {
  check_norm(*this, "rmsnorm_forward", out, rstd, x, weight);
  HookScope scope(*this, "rmsnorm_forward");
  do_rmsnorm_forward(out, rstd, x, weight, eps);
}

void Backend::add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                                  const Tensor& b, const Tensor& weight, float eps) {
  const char* op = "add_rmsnorm_forward";
  check_float(*this, op, "sum", sum);
  check_float(*this, op, "a", a);
  check_float(*this, op, "b", b);
  check_same_shape(op, "sum", sum, "a", a);
  check_same_shape(op, "a", a, "b", b);
  check_norm(*this, op, out, rstd, sum, weight);
  HookScope scope(*this, op);
  do_add_rmsnorm_forward(sum, out, rstd, a, b, weight, eps);
}

void Backend::rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                               const Tensor& weight, const Tensor& rstd) {
  const char* op = "rmsnorm_backward";
  check_float(*this, op, "dx", dx);
  check_dtype(op, "dweight", dweight, DType::F32);
  check_norm(*this, op, dout, rstd, x, weight);
  check_same_shape(op, "dx", dx, "x", x);
  SMOL_CHECK(dweight.numel() == weight.numel(), op, ": dweight ", dweight.shape.str(),
             " and weight ", weight.shape.str(), " must have the same size");
  HookScope scope(*this, op);
  do_rmsnorm_backward(dx, dweight, dout, x, weight, rstd);
}

namespace {
void check_rope(const Backend& be, const char* op, const Tensor& x, const Tensor& positions,
                float theta) {
  check_float(be, op, "x", x);
  check_i32(op, "positions", positions);
  check_rank(op, "x", x, 3, "[T, H, D]");
  SMOL_CHECK(x.shape[2] % 2 == 0, op, ": head dim of x ", x.shape.str(), " must be even");
  SMOL_CHECK(theta > 0.0f, op, ": theta must be positive, got ", theta);
  check_vector(op, "positions", positions, x.shape[0]);
}
}  // namespace

void Backend::rope_forward(Tensor x, const Tensor& positions, float theta) {
  check_rope(*this, "rope_forward", x, positions, theta);
  HookScope scope(*this, "rope_forward");
  do_rope_forward(x, positions, theta);
}

void Backend::rope_backward(Tensor dx, const Tensor& positions, float theta) {
  check_rope(*this, "rope_backward", dx, positions, theta);
  HookScope scope(*this, "rope_backward");
  do_rope_backward(dx, positions, theta);
}

namespace {
void check_rope_qk(const Backend& be, const char* op, const Tensor& q, const Tensor& k,
                   const Tensor& positions, float theta) {
  check_rope(be, op, q, positions, theta);
  check_rope(be, op, k, positions, theta);
  SMOL_CHECK(q.shape[0] == k.shape[0] && q.shape[2] == k.shape[2], op, ": q ", q.shape.str(),
             " and k ", k.shape.str(), " must have the same tokens and head dim");
  const char *q0 = static_cast<const char*>(q.data), *k0 = static_cast<const char*>(k.data);
  SMOL_CHECK(q0 + q.bytes() <= k0 || k0 + k.bytes() <= q0, op, ": q and k overlap");
}
}  // namespace

void Backend::rope_qk_forward(Tensor q, Tensor k, const Tensor& positions, float theta) {
  check_rope_qk(*this, "rope_qk_forward", q, k, positions, theta);
  HookScope scope(*this, "rope_qk_forward");
  do_rope_qk(q, k, positions, theta, /*backward=*/false);
}

void Backend::rope_qk_backward(Tensor dq, Tensor dk, const Tensor& positions, float theta) {
  check_rope_qk(*this, "rope_qk_backward", dq, dk, positions, theta);
  HookScope scope(*this, "rope_qk_backward");
  do_rope_qk(dq, dk, positions, theta, /*backward=*/true);
}

namespace {
void check_attention(const Backend& be, const char* op, const Tensor& out, const Tensor& lse,
                     const Tensor& q, const Tensor& k, const Tensor& v,
                     const AttentionLayout& layout) {
  check_float(be, op, "out", out);
  check_dtype(op, "lse", lse, DType::F32);
  check_float(be, op, "q", q);
  check_float(be, op, "k", k);
  check_float(be, op, "v", v);
  check_rank(op, "q", q, 3, "[Tq, Hq, D]");
  check_rank(op, "k", k, 3, "[Tk, Hkv, D]");
  check_same_shape(op, "k", k, "v", v);
  check_same_shape(op, "out", out, "q", q);
  SMOL_CHECK(q.dtype == k.dtype && k.dtype == v.dtype, op, ": q, k and v must share one dtype");
  SMOL_CHECK(k.shape[2] == q.shape[2], op, ": head dim of q ", q.shape.str(), " and k ",
             k.shape.str(), " differ");
  SMOL_CHECK(k.shape[1] > 0 && q.shape[1] % k.shape[1] == 0, op, ": query heads of q ",
             q.shape.str(), " must be a multiple of the key/value heads of k ", k.shape.str());
  SMOL_CHECK(q.shape[2] > 0, op, ": head dim of q ", q.shape.str(), " must be positive");
  SMOL_CHECK(lse.numel() == q.shape[0] * q.shape[1], op, ": lse must be [", q.shape[0], ", ",
             q.shape[1], "], got ", lse.shape.str());
  const int64_t q_tokens = q.shape[0], k_tokens = k.shape[0];
  for (size_t s = 0; s < layout.seqs.size(); ++s) {
    const SeqSpan& sp = layout.seqs[s];
    SMOL_CHECK(sp.q_begin >= 0 && sp.q_len >= 0 && sp.q_begin + int64_t{sp.q_len} <= q_tokens, op,
               ": layout sequence ", s, " has query rows [", sp.q_begin, ", ",
               int64_t{sp.q_begin} + sp.q_len, ") outside q's ", q_tokens, " rows");
    SMOL_CHECK(sp.k_begin >= 0 && sp.k_len >= 0 && sp.k_begin + int64_t{sp.k_len} <= k_tokens, op,
               ": layout sequence ", s, " has key rows [", sp.k_begin, ", ",
               int64_t{sp.k_begin} + sp.k_len, ") outside k's ", k_tokens, " rows");
    SMOL_CHECK(sp.q_len <= sp.k_len, op, ": layout sequence ", s, " has q_len ", sp.q_len,
               " > k_len ", sp.k_len);
  }
}
// attention_backward's contract (shared by attention_rope_backward).
void check_attention_backward(const Backend& be, const char* op, const Tensor& dq, const Tensor& dk,
                              const Tensor& dv, const Tensor& dout, const Tensor& q,
                              const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const AttentionLayout& layout) {
  check_attention(be, op, out, lse, q, k, v, layout);
  check_same_shape(op, "dq", dq, "q", q);
  check_same_shape(op, "dk", dk, "k", k);
  check_same_shape(op, "dv", dv, "v", v);
  check_same_shape(op, "dout", dout, "out", out);
  SMOL_CHECK(dq.dtype == q.dtype && dk.dtype == q.dtype && dv.dtype == q.dtype &&
                 dout.dtype == q.dtype && out.dtype == q.dtype,
             op, ": dq, dk, dv, dout and out must have the dtype of q (", dtype_name(q.dtype), ")");
}
}  // namespace

void Backend::attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k,
                                const Tensor& v, const AttentionLayout& layout, float scale) {
  check_attention(*this, "attention_forward", out, lse, q, k, v, layout);
  HookScope hook(*this, "attention_forward");
  do_attention_forward(out, lse, q, k, v, layout, scale);
}

void Backend::attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                                 const Tensor& q, const Tensor& k, const Tensor& v,
                                 const Tensor& out, const Tensor& lse,
                                 const AttentionLayout& layout, float scale) {
  const char* op = "attention_backward";
  check_attention_backward(*this, op, dq, dk, dv, dout, q, k, v, out, lse, layout);
  HookScope hook(*this, op);
  do_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, layout, scale);
}

// ---- fused RoPE (docs/design.md §2.7 "Fused RoPE") ---------------------------------------------

void Backend::attention_rope_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                                      const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& out, const Tensor& lse,
                                      const AttentionLayout& layout, float scale,
                                      const Rotary& rotary) {
  const char* op = "attention_rope_backward";
  check_attention_backward(*this, op, dq, dk, dv, dout, q, k, v, out, lse, layout);
  // The rotation's own contract, as rope_qk_backward(dq, dk) would check it (same T for q, k).
  check_rope_qk(*this, op, dq, dk, rotary.positions, rotary.theta);
  HookScope hook(*this, op);
  do_attention_rope_backward(dq, dk, dv, dout, q, k, v, out, lse, layout, scale, rotary);
}

void Backend::rope_append_kv(Tensor q, Tensor k, const Tensor& v, Tensor k_cache, Tensor v_cache,
                             const Tensor& index, const Rotary& rotary) {
  const char* op = "rope_append_kv";
  check_rope_qk(*this, op, q, k, rotary.positions, rotary.theta);
  check_float(*this, op, "v", v);
  check_float(*this, op, "k_cache", k_cache);
  check_float(*this, op, "v_cache", v_cache);
  check_same_shape(op, "v", v, "k", k);
  check_rank(op, "k_cache", k_cache, 3, "[R, Hkv, D]");
  check_same_shape(op, "v_cache", v_cache, "k_cache", k_cache);
  SMOL_CHECK(k_cache.shape[1] == k.shape[1] && k_cache.shape[2] == k.shape[2], op, ": k_cache ",
             k_cache.shape.str(), " must have the heads and head dim of k ", k.shape.str());
  SMOL_CHECK(q.dtype == k.dtype && v.dtype == k.dtype && k_cache.dtype == k.dtype &&
                 v_cache.dtype == k.dtype,
             op,
             ": q, k, v, k_cache and v_cache must share one dtype (rows are appended bit for bit)");
  check_i32(op, "index", index);
  check_vector(op, "index", index, k.shape[0]);
  // The rows a thread writes must not be rows another thread reads.
  auto overlap = [](const Tensor& a, const Tensor& b) {
    const char *a0 = static_cast<const char*>(a.data), *b0 = static_cast<const char*>(b.data);
    return a.bytes() > 0 && b.bytes() > 0 && a0 < b0 + b.bytes() && b0 < a0 + a.bytes();
  };
  for (const Tensor* cache : {&k_cache, &v_cache})
    for (const Tensor* src : std::initializer_list<const Tensor*>{&q, &k, &v})
      SMOL_CHECK(!overlap(*cache, *src), op, ": the caches must not overlap q, k or v");
  SMOL_CHECK(!overlap(k_cache, v_cache), op, ": k_cache and v_cache overlap");
  HookScope scope(*this, op);
  if (k.shape[0] > 0) do_rope_append_kv(q, k, v, k_cache, v_cache, index, rotary);
}

void Backend::swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) {
  const char* op = "swiglu_forward";
  check_float(*this, op, "out", out);
  check_float(*this, op, "gate", gate);
  check_float(*this, op, "up", up);
  check_same_shape(op, "gate", gate, "up", up);
  check_same_shape(op, "out", out, "gate", gate);
  SMOL_CHECK(out.dtype == gate.dtype && up.dtype == gate.dtype, op,
             ": out, gate and up must share one dtype");
  HookScope hook(*this, op);
  do_swiglu_forward(out, gate, up);
}

void Backend::swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                              const Tensor& up) {
  const char* op = "swiglu_backward";
  for (const auto& [arg, t] : {std::pair<const char*, const Tensor*>{"dgate", &dgate},
                               {"dup", &dup},
                               {"dout", &dout},
                               {"gate", &gate},
                               {"up", &up}})
    check_float(*this, op, arg, *t);
  check_same_shape(op, "gate", gate, "up", up);
  check_same_shape(op, "dout", dout, "gate", gate);
  check_same_shape(op, "dgate", dgate, "gate", gate);
  check_same_shape(op, "dup", dup, "up", up);
  SMOL_CHECK(dgate.dtype == gate.dtype && dup.dtype == gate.dtype && dout.dtype == gate.dtype &&
                 up.dtype == gate.dtype,
             op, ": dgate, dup, dout, gate and up must share one dtype");
  HookScope hook(*this, op);
  do_swiglu_backward(dgate, dup, dout, gate, up);
}

void Backend::swiglu_backward(Tensor dgate_up, const Tensor& dout, const Tensor& gate,
                              const Tensor& up) {
  const char* op = "swiglu_backward";
  for (const auto& [arg, t] : {std::pair<const char*, const Tensor*>{"dgate_up", &dgate_up},
                               {"dout", &dout},
                               {"gate", &gate},
                               {"up", &up}})
    check_float(*this, op, arg, *t);
  check_same_shape(op, "gate", gate, "up", up);
  check_same_shape(op, "dout", dout, "gate", gate);
  SMOL_CHECK(gate.shape.rank == 2 && dgate_up.shape.rank == 2 &&
                 dgate_up.shape[0] == gate.shape[0] && dgate_up.shape[1] == 2 * gate.shape[1],
             op, ": dgate_up ", dgate_up.shape.str(), " must be [T, 2F] for gate ",
             gate.shape.str(), " [T, F]");
  SMOL_CHECK(dgate_up.dtype == gate.dtype && dout.dtype == gate.dtype && up.dtype == gate.dtype, op,
             ": dgate_up, dout, gate and up must share one dtype");
  for (const Tensor* t : {&dout, &gate, &up})
    SMOL_CHECK(!overlap(dgate_up, *t), op, ": dgate_up overlaps an input");
  HookScope hook(*this, op);
  do_swiglu_backward_concat(dgate_up, dout, gate, up);
}

namespace {
void check_cross_entropy(const Backend& be, const char* op, const Tensor& losses,
                         const Tensor* dlogits, const Tensor& logits, const Tensor& targets) {
  check_dtype(op, "losses", losses, DType::F32);
  check_float(be, op, "logits", logits);
  check_i32(op, "targets", targets);
  const int64_t rows = logits.shape.rows(), vocab = logits.shape.cols();
  check_vector(op, "losses", losses, rows);
  check_vector(op, "targets", targets, rows);
  SMOL_CHECK(vocab > 0 && vocab < (int64_t{1} << 31), op, ": vocabulary ", vocab, " of logits ",
             logits.shape.str(), " must be in [1, 2^31)");
  if (dlogits) {
    check_float(be, op, "dlogits", *dlogits);
    check_same_shape(op, "dlogits", *dlogits, "logits", logits);
    SMOL_CHECK(dlogits->dtype == logits.dtype, op, ": dlogits must have the dtype of logits");
  }
}
}  // namespace

void Backend::cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits,
                            const Tensor& targets, float dloss_scale, Tensor argmax) {
  check_cross_entropy(*this, "cross_entropy", losses, dlogits, logits, targets);
  if (argmax.data) {
    check_i32("cross_entropy", "argmax", argmax);
    check_vector("cross_entropy", "argmax", argmax, logits.shape.rows());
  }
  HookScope hook(*this, "cross_entropy");
  do_cross_entropy(losses, dlogits, logits, targets, dloss_scale, argmax);
}

void Backend::argmax(Tensor out, const Tensor& x) {
  check_i32("argmax", "out", out);
  check_float(*this, "argmax", "x", x);
  check_vector("argmax", "out", out, x.shape.rows());
  SMOL_CHECK(x.shape.cols() > 0 && x.shape.cols() < (int64_t{1} << 31), "argmax: x ", x.shape.str(),
             " must have a last dimension in [1, 2^31)");
  HookScope hook(*this, "argmax");
  do_argmax(out, x);
}

void Backend::sample_tokens(Tensor out, const Tensor& logits, const Tensor& uniforms,
                            float temperature, float top_p) {
  check_i32("sample_tokens", "out", out);
  check_dtype("sample_tokens", "logits", logits, DType::F32);
  check_rank("sample_tokens", "logits", logits, 2, "[T, V]");
  check_dtype("sample_tokens", "uniforms", uniforms, DType::F32);
  check_vector("sample_tokens", "out", out, logits.shape.rows());
  check_vector("sample_tokens", "uniforms", uniforms, logits.shape.rows());
  SMOL_CHECK(logits.shape.cols() > 0 && logits.shape.cols() <= kSamplingMaxVocab,
             "sample_tokens: logits ", logits.shape.str(), " must have a vocabulary in [1, ",
             kSamplingMaxVocab, "]");
  SMOL_CHECK(std::isfinite(temperature) && temperature > 0.0f, "sample_tokens: temperature ",
             temperature, " must be > 0 (greedy decoding is argmax)");
  SMOL_CHECK(top_p > 0.0f && top_p <= 1.0f, "sample_tokens: top_p ", top_p, " must be in (0, 1]");
  HookScope hook(*this, "sample_tokens");
  do_sample_tokens(out, logits, uniforms, temperature, top_p);
}

void Backend::dropout(Tensor out, const Tensor& in, float p, uint64_t seed) {
  check_float(*this, "dropout", "out", out);
  check_float(*this, "dropout", "in", in);
  check_same_shape("dropout", "out", out, "in", in);
  SMOL_CHECK(p >= 0.0f && p <= 1.0f, "dropout: probability ", p, " is outside [0, 1]");
  HookScope hook(*this, "dropout");
  do_dropout(out, in, p, seed);
}

// ---- composite ops -----------------------------------------------------------------------------

void Backend::lm_head_cross_entropy(const LmHeadOutputs& out, const Tensor& hidden,
                                    const Tensor& weight, const Tensor& targets,
                                    Tensor logits_scratch, float loss_scale,
                                    std::span<const int32_t> host_targets) {
  const char* op = "lm_head_cross_entropy";
  const int64_t T = hidden.shape.rows(), C = hidden.shape.cols(), V = weight.shape.rows();
  check_float(*this, op, "hidden", hidden);
  check_weight(*this, op, "weight", weight);
  SMOL_CHECK(weight.shape.cols() == C, op, ": weight ", weight.shape.str(), " must be [V, ", C,
             "] for hidden ", hidden.shape.str());
  check_i32(op, "targets", targets);
  check_vector(op, "targets", targets, T);
  check_dtype(op, "losses", out.losses, DType::F32);
  check_vector(op, "losses", out.losses, T);
  check_float(*this, op, "logits_scratch", logits_scratch);
  SMOL_CHECK(logits_scratch.shape.cols() == V && logits_scratch.shape.rows() >= 1, op,
             ": logits_scratch ", logits_scratch.shape.str(), " must be [>= 1, ", V, "]");
  if (out.dhidden.data) {
    check_float(*this, op, "dhidden", out.dhidden);
    check_same_shape(op, "dhidden", out.dhidden, "hidden", hidden);
  }
  if (out.dweight.data) {
    SMOL_CHECK(out.dhidden.data, op, ": dweight needs dhidden (the backward) too");
    check_float(*this, op, "dweight", out.dweight);
    check_same_shape(op, "dweight", out.dweight, "weight", weight);
  }
  if (out.argmax.data) {
    check_i32(op, "argmax", out.argmax);
    check_vector(op, "argmax", out.argmax, T);
  }
  SMOL_CHECK(host_targets.empty() || static_cast<int64_t>(host_targets.size()) == T, op,
             ": host_targets has ", host_targets.size(), " values for ", T, " rows");
  HookScope hook(*this, op);
  do_lm_head_cross_entropy(out, hidden, weight, targets, logits_scratch, loss_scale, host_targets);
}

// ---- optimisation ------------------------------------------------------------------------------

double Backend::sum_of_squares(std::span<const Tensor> tensors) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    SMOL_CHECK(is_float_dtype(t.dtype), "sum_of_squares: tensor ", i, " ", t.shape.str(), " is ",
               dtype_name(t.dtype), ", not a float dtype of ", name());
    SMOL_CHECK(t.data != nullptr || t.numel() == 0, "sum_of_squares: tensor ", i, " ",
               t.shape.str(), " has no data (null pointer)");
  }
  HookScope hook(*this, "sum_of_squares");
  return do_sum_of_squares(tensors);
}

void Backend::sum_of_squares_into(Tensor out, std::span<const Tensor> tensors) {
  check_dtype("sum_of_squares_into", "out", out, DType::F64);
  check_vector("sum_of_squares_into", "out", out, 1);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    SMOL_CHECK(is_float_dtype(t.dtype), "sum_of_squares_into: tensor ", i, " ", t.shape.str(),
               " is ", dtype_name(t.dtype), ", not a float dtype of ", name());
    SMOL_CHECK(t.data != nullptr || t.numel() == 0, "sum_of_squares_into: tensor ", i, " ",
               t.shape.str(), " has no data (null pointer)");
  }
  HookScope hook(*this, "sum_of_squares_into");
  do_sum_of_squares_into(out, tensors);
}

void Backend::accumulate_sum(Tensor acc, const Tensor& x) {
  check_dtype("accumulate_sum", "acc", acc, DType::F32);
  check_vector("accumulate_sum", "acc", acc, 1);
  check_dtype("accumulate_sum", "x", x, DType::F32);
  HookScope hook(*this, "accumulate_sum");
  do_accumulate_sum(acc, x);
}

void Backend::adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper) {
  SMOL_CHECK(hyper.step >= 1, "adamw_step: step must be >= 1 (1-based), got ", hyper.step);
  SMOL_CHECK(hyper.beta1 >= 0 && hyper.beta1 < 1 && hyper.beta2 >= 0 && hyper.beta2 < 1,
             "adamw_step: betas must be in [0, 1), got ", hyper.beta1, ", ", hyper.beta2);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const AdamWTensor& t = tensors[i];
    for (const auto& [arg, tensor] : {std::pair<const char*, const Tensor*>{"param", &t.param},
                                      {"grad", &t.grad},
                                      {"m", &t.m},
                                      {"v", &t.v}}) {
      SMOL_CHECK(tensor->dtype == DType::F32, "adamw_step: tensor ", i, " ", arg, " ",
                 tensor->shape.str(), " must be F32, got ", dtype_name(tensor->dtype));
      SMOL_CHECK(tensor->shape == t.param.shape, "adamw_step: tensor ", i, " ", arg, " ",
                 tensor->shape.str(), " must have the shape of param ", t.param.shape.str());
      SMOL_CHECK(tensor->data != nullptr || tensor->numel() == 0, "adamw_step: tensor ", i, " ",
                 arg, " has no data (null pointer)");
    }
  }
  if (hyper.clip_state.data != nullptr) {  // a default (null) Tensor: clip by grad_scale
    check_dtype("adamw_step", "clip_state", hyper.clip_state, DType::F64);
    check_vector("adamw_step", "clip_state", hyper.clip_state, 3);
  }
  if (hyper.loss_check.data != nullptr) {
    SMOL_CHECK(hyper.clip_state.data != nullptr,
               "adamw_step: loss_check needs a clip_state to record the skipped step in");
    check_dtype("adamw_step", "loss_check", hyper.loss_check, DType::F32);
    check_vector("adamw_step", "loss_check", hyper.loss_check, 1);
  }
  HookScope hook(*this, "adamw_step");
  do_adamw_step(tensors, hyper);
}

// ---- LoRA down-projection with dropout on the fly (docs/design.md §2.7) ------------------------

namespace {
bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.data == nullptr || b.data == nullptr || a.bytes() == 0 || b.bytes() == 0) return false;
  const char *a0 = static_cast<const char*>(a.data), *b0 = static_cast<const char*>(b.data);
  return a0 < b0 + b.bytes() && b0 < a0 + a.bytes();
}

// The shared contract of lora_down_forward / lora_down_backward: n members (1 ≤ n ≤
// kMaxLoraDownMembers) with one seed each, x [T, C] float, Aᵢ [rᵢ, C] F32, lows (utᵢ or gtᵢ)
// [rᵢ, T] float, scratch ≥ T·C float elements; p in [0, 1). Outputs must not overlap inputs.
void check_lora_down(const Backend& be, const char* op, const char* low_name,
                     std::span<const Tensor> lows, const Tensor& x, std::span<const Tensor> as,
                     float p, std::span<const uint64_t> seeds, const Tensor& scratch) {
  const size_t n = as.size();
  SMOL_CHECK(n >= 1 && n <= Backend::kMaxLoraDownMembers, op, ": ", n, " adapters; between 1 and ",
             Backend::kMaxLoraDownMembers, " share one input");
  SMOL_CHECK(lows.size() == n && seeds.size() == n, op, ": ", n, " A factors but ", lows.size(),
             " ", low_name, " and ", seeds.size(), " seeds (one each)");
  SMOL_CHECK(p >= 0.0f && p < 1.0f, op, ": dropout probability ", p, " is outside [0, 1)");
  check_float(be, op, "x", x);
  check_rank(op, "x", x, 2, "[T, C]");
  const int64_t T = x.shape[0], C = x.shape[1];
  check_float(be, op, "scratch", scratch);
  SMOL_CHECK(scratch.numel() >= T * C, op, ": scratch ", scratch.shape.str(), " holds fewer than ",
             "T·C = ", T * C, " elements");
  SMOL_CHECK(!overlaps(scratch, x), op, ": scratch overlaps x");
  for (size_t i = 0; i < n; ++i) {
    check_dtype(op, "A", as[i], DType::F32);
    check_rank(op, "A", as[i], 2, "[r, C]");
    SMOL_CHECK(as[i].shape[1] == C && as[i].shape[0] >= 1, op, ": A[", i, "] ", as[i].shape.str(),
               " must be [r ≥ 1, ", C, "] for x ", x.shape.str());
    check_float(be, op, low_name, lows[i]);
    SMOL_CHECK(lows[i].shape == (Shape{as[i].shape[0], T}), op, ": ", low_name, "[", i, "] ",
               lows[i].shape.str(), " must be [", as[i].shape[0], ", ", T, "] (rᵢ × T)");
    SMOL_CHECK(!overlaps(lows[i], x) && !overlaps(lows[i], as[i]) && !overlaps(lows[i], scratch),
               op, ": ", low_name, "[", i, "] overlaps x, A or scratch");
    for (size_t j = 0; j < i; ++j)
      SMOL_CHECK(!overlaps(lows[i], lows[j]), op, ": ", low_name, "[", j, "] and ", low_name, "[",
                 i, "] overlap");
  }
}
}  // namespace

void Backend::lora_down_forward(std::span<const Tensor> uts, const Tensor& x,
                                std::span<const Tensor> as, float p,
                                std::span<const uint64_t> seeds, Tensor scratch) {
  check_lora_down(*this, "lora_down_forward", "ut", uts, x, as, p, seeds, scratch);
  HookScope hook(*this, "lora_down_forward");
  do_lora_down_forward(uts, x, as, p, seeds, scratch);
}

void Backend::lora_down_backward(std::span<const Tensor> das, Tensor dx,
                                 std::span<const Tensor> gts, const Tensor& x,
                                 std::span<const Tensor> as, float p,
                                 std::span<const uint64_t> seeds, float s, Tensor scratch) {
  const char* op = "lora_down_backward";
  check_lora_down(*this, op, "gt", gts, x, as, p, seeds, scratch);
  SMOL_CHECK(das.size() == as.size(), op, ": ", as.size(), " A factors but ", das.size(), " dA");
  for (size_t i = 0; i < das.size(); ++i) {
    check_dtype(op, "dA", das[i], DType::F32);
    check_same_shape(op, "dA", das[i], "A", as[i]);
    SMOL_CHECK(!overlaps(das[i], x) && !overlaps(das[i], scratch) && !overlaps(das[i], gts[i]) &&
                   !overlaps(das[i], as[i]) && !overlaps(das[i], dx),
               op, ": dA[", i, "] overlaps x, A, gt, dx or scratch");
  }
  if (dx.data) {
    check_float(*this, op, "dx", dx);
    check_same_shape(op, "dx", dx, "x", x);
    SMOL_CHECK(!overlaps(dx, x) && !overlaps(dx, scratch), op, ": dx overlaps x or scratch");
    for (const Tensor& gt : gts) SMOL_CHECK(!overlaps(dx, gt), op, ": dx overlaps a gt");
  }
  HookScope hook(*this, op);
  do_lora_down_backward(das, dx, gts, x, as, p, seeds, s, scratch);
}
// ---- end of LoRA down-projection ----------------------------------------------------------------

// ---- LoRA up-projections fused (docs/design.md §2.7 "LoRA up-projections fused") -------------

namespace {
// The shared contract of lora_up_forward / lora_up_backward: n members (1 ≤ n ≤
// kMaxLoraUpMembers), Bᵢ [Nᵢ, rᵢ] F32, utᵢ [rᵢ, T] float with one T for all, outsᵢ (yᵢ or dyᵢ)
// [T, Nᵢ] float. The outputs' overlaps are checked by each op.
void check_lora_up(const Backend& be, const char* op, const char* out_name,
                   std::span<const Tensor> outs, std::span<const Tensor> uts,
                   std::span<const Tensor> bs) {
  const size_t n = bs.size();
  SMOL_CHECK(n >= 1 && n <= Backend::kMaxLoraUpMembers, op, ": ", n, " adapters; between 1 and ",
             Backend::kMaxLoraUpMembers, " per call");
  SMOL_CHECK(outs.size() == n && uts.size() == n, op, ": ", n, " B factors but ", outs.size(), " ",
             out_name, " and ", uts.size(), " ut (one each)");
  for (size_t i = 0; i < n; ++i) {
    check_dtype(op, "B", bs[i], DType::F32);
    check_rank(op, "B", bs[i], 2, "[N, r]");
    check_float(be, op, "ut", uts[i]);
    check_rank(op, "ut", uts[i], 2, "[r, T]");
    check_float(be, op, out_name, outs[i]);
    check_rank(op, out_name, outs[i], 2, "[T, N]");
    const int64_t N = bs[i].shape[0], r = bs[i].shape[1], T = uts[0].shape[1];
    SMOL_CHECK(r >= 1 && uts[i].shape == (Shape{r, T}), op, ": ut[", i, "] ", uts[i].shape.str(),
               " must be [", r, ", ", T, "] for B[", i, "] ", bs[i].shape.str(),
               " (rᵢ × the members' common T)");
    SMOL_CHECK(outs[i].shape == (Shape{T, N}), op, ": ", out_name, "[", i, "] ",
               outs[i].shape.str(), " must be [", T, ", ", N, "] (T × Nᵢ)");
  }
}
}  // namespace

void Backend::lora_up_forward(std::span<const Tensor> ys, std::span<const Tensor> uts,
                              std::span<const Tensor> bs, float s) {
  const char* op = "lora_up_forward";
  check_lora_up(*this, op, "y", ys, uts, bs);
  for (size_t i = 0; i < ys.size(); ++i) {
    for (size_t j = 0; j < ys.size(); ++j)
      SMOL_CHECK(!overlaps(ys[i], uts[j]) && !overlaps(ys[i], bs[j]) &&
                     (i == j || !overlaps(ys[i], ys[j])),
                 op, ": y[", i, "] overlaps ut[", j, "], B[", j, "] or y[", j, "]");
  }
  HookScope hook(*this, op);
  do_lora_up_forward(ys, uts, bs, s);
}

void Backend::lora_up_backward(std::span<const Tensor> dbs, std::span<const Tensor> gts,
                               std::span<const Tensor> dys, std::span<const Tensor> uts,
                               std::span<const Tensor> bs, float s) {
  const char* op = "lora_up_backward";
  check_lora_up(*this, op, "dy", dys, uts, bs);
  SMOL_CHECK(dbs.size() == bs.size() && gts.size() == bs.size(), op, ": ", bs.size(),
             " B factors but ", dbs.size(), " dB and ", gts.size(), " gt (one each)");
  const int64_t T = uts[0].shape[1];
  for (size_t i = 0; i < bs.size(); ++i) {
    check_dtype(op, "dB", dbs[i], DType::F32);
    check_same_shape(op, "dB", dbs[i], "B", bs[i]);
    check_float(*this, op, "gt", gts[i]);
    SMOL_CHECK(gts[i].shape == (Shape{bs[i].shape[1], T}), op, ": gt[", i, "] ", gts[i].shape.str(),
               " must be [", bs[i].shape[1], ", ", T, "] (rᵢ × T)");
    for (size_t j = 0; j < bs.size(); ++j) {
      SMOL_CHECK(!overlaps(dbs[i], dys[j]) && !overlaps(dbs[i], uts[j]) &&
                     !overlaps(dbs[i], bs[j]) && !overlaps(dbs[i], gts[j]) &&
                     (i == j || !overlaps(dbs[i], dbs[j])),
                 op, ": dB[", i, "] overlaps dy, ut, B, gt or dB of member ", j);
      SMOL_CHECK(!overlaps(gts[i], dys[j]) && !overlaps(gts[i], uts[j]) &&
                     !overlaps(gts[i], bs[j]) && (i == j || !overlaps(gts[i], gts[j])),
                 op, ": gt[", i, "] overlaps dy, ut, B or gt of member ", j);
    }
  }
  HookScope hook(*this, op);
  do_lora_up_backward(dbs, gts, dys, uts, bs, s);
}
// ---- end of LoRA up-projections -----------------------------------------------------------------

}  // namespace smol

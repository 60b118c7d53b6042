// Packing rows and decode requests into one token stream with an AttentionLayout.
#include "model/packed_batch.h"

#include <algorithm>

namespace smol {

namespace {

void check_id(int32_t id, int64_t vocab, const char* what, size_t row, size_t pos) {
  SMOL_CHECK(id >= 0 && id < vocab, what, " ", id, " at row ", row, " position ", pos,
             " is outside the vocabulary [0, ", vocab, ")");
}

}  // namespace

PackedBatch pack_rows(const std::vector<TokenRow>& rows, int64_t vocab_size) {
  PackedBatch b;
  for (size_t r = 0; r < rows.size(); ++r) {
    const TokenRow& row = rows[r];
    const size_t n = row.input_ids.size();
    SMOL_CHECK(n > 0, "row ", r, " has no tokens");
    SMOL_CHECK(row.labels.empty() || row.labels.size() == n, "row ", r, " has ", n,
               " input_ids but ", row.labels.size(), " labels");
    SMOL_CHECK(n < (1u << 30), "row ", r, " is too long (", n, " tokens)");
    const int32_t begin = static_cast<int32_t>(b.ids.size());
    for (size_t t = 0; t < n; ++t) {
      check_id(row.input_ids[t], vocab_size, "token id", r, t);
      b.ids.push_back(row.input_ids[t]);
      b.positions.push_back(static_cast<int32_t>(t));
      int32_t target = -100;
      if (!row.labels.empty()) {
        const int32_t label = row.labels[t];
        if (label != -100) check_id(label, vocab_size, "label", r, t);
        if (t + 1 < n) target = row.labels[t + 1];
      }
      b.targets.push_back(target);
      if (target != -100) ++b.supervised;
    }
    const int32_t len = static_cast<int32_t>(n);
    b.layout.seqs.push_back(SeqSpan{begin, len, begin, len});
    b.layout.max_q_len = std::max(b.layout.max_q_len, len);
    b.layout.max_k_len = std::max(b.layout.max_k_len, len);
  }
  return b;
}

PackedBatch pack_decode(const std::vector<int32_t>& slots,
                        const std::vector<std::vector<int32_t>>& new_tokens,
                        const std::vector<int32_t>& cached_length, int64_t slot_stride,
                        int64_t vocab_size) {
  SMOL_CHECK(slots.size() == new_tokens.size(), "decode: ", slots.size(), " slots but ",
             new_tokens.size(), " token lists");
  PackedBatch b;
  for (size_t i = 0; i < slots.size(); ++i) {
    const std::vector<int32_t>& toks = new_tokens[i];
    SMOL_CHECK(!toks.empty(), "decode: slot ", slots[i], " was given no new tokens");
    for (size_t j = 0; j < i; ++j)
      SMOL_CHECK(slots[j] != slots[i], "decode: slot ", slots[i], " appears twice");
    const int32_t begin = static_cast<int32_t>(b.ids.size());
    const int32_t past = cached_length[i];
    for (size_t t = 0; t < toks.size(); ++t) {
      check_id(toks[t], vocab_size, "token id", i, t);
      b.ids.push_back(toks[t]);
      b.positions.push_back(past + static_cast<int32_t>(t));
      b.targets.push_back(-100);
    }
    const int32_t q_len = static_cast<int32_t>(toks.size());
    const int32_t k_len = past + q_len;
    b.layout.seqs.push_back(
        SeqSpan{begin, q_len, static_cast<int32_t>(slots[i] * slot_stride), k_len});
    b.layout.max_q_len = std::max(b.layout.max_q_len, q_len);
    b.layout.max_k_len = std::max(b.layout.max_k_len, k_len);
    b.slots.push_back(slots[i]);
  }
  return b;
}

}  // namespace smol

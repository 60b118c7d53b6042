// GGUF reader tests (docs/formats.md §3): metadata of every value type, tensor infos, alignment,
// the tokenizer metadata → BpeSpec, every malformed case, and a seeded mutation fuzz.
#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "io/dequantize.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"
#include "tests/weights/test_files.h"
#include "tests/weights/tiny_llama_gguf.h"

namespace smol {
namespace {

using namespace smol::test;

// Expects open() to throw smol::Error whose message names the file and contains `phrase`.
void expect_gguf_error(const std::string& path, const std::string& phrase) {
  try {
    GgufFile::open(path);
    ADD_FAILURE() << "no error for " << path << " (expected '" << phrase << "')";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(phrase), std::string::npos) << "expected '" << phrase << "' in: " << msg;
  }
}

GgufBuilder one_tensor_file() {
  GgufBuilder g;
  g.kv_string("general.architecture", "test");
  g.tensor({"w", {4, 2}, 0, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}), {}});
  return g;
}

TEST(GgufReader, MetadataOfEveryValueType) {
  TempDir dir;
  GgufBuilder g;
  g.kv<uint8_t>("u8", kU8, 200);
  g.kv<int8_t>("i8", kI8, -100);
  g.kv<uint16_t>("u16", kU16, 60000);
  g.kv<int16_t>("i16", kI16, -30000);
  g.kv<uint32_t>("u32", kU32, 4000000000u);
  g.kv<int32_t>("i32", kI32, -2000000000);
  g.kv<float>("f32", kF32, 0.5f);
  g.kv<uint8_t>("bool", kBool, 1);
  g.kv_string("string", "héllo");
  g.kv<uint64_t>("u64", kU64, 1ull << 40);
  g.kv<int64_t>("i64", kI64, -(1ll << 40));
  g.kv<double>("f64", kF64, 1e-300);
  g.kv_string_array("strings", {"a", "", "b c"});
  g.kv_i32_array("ints", {-1, 0, 7});
  Bytes f64s;
  put<uint32_t>(f64s, kF64);
  put<uint64_t>(f64s, 2);
  put<double>(f64s, 1.5);
  put<double>(f64s, -2.25);
  g.kv_raw("f64s", kArray, f64s);
  Bytes nested;  // array of 2 arrays: [u8 1, 2] and [string "x"]
  put<uint32_t>(nested, kArray);
  put<uint64_t>(nested, 2);
  put<uint32_t>(nested, kU8);
  put<uint64_t>(nested, 2);
  put<uint8_t>(nested, 1);
  put<uint8_t>(nested, 2);
  put<uint32_t>(nested, kString);
  put<uint64_t>(nested, 1);
  put_string(nested, "x");
  g.kv_raw("nested", kArray, nested);
  Bytes empty;
  put<uint32_t>(empty, kU16);
  put<uint64_t>(empty, 0);
  g.kv_raw("empty", kArray, empty);
  const std::string path = dir.write("meta.gguf", g.build());

  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 17u);
  EXPECT_EQ(f.metadata()[0].first, "u8");  // file order kept
  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_int("u64"), 1ll << 40);
  EXPECT_EQ(f.get_int("i64"), -(1ll << 40));
  EXPECT_EQ(f.get_float("f32"), 0.5);
  EXPECT_EQ(f.get_float("f64"), 1e-300);
  EXPECT_EQ(f.get_float("u32"), 4e9);  // integers are numbers too
  EXPECT_TRUE(f.get_bool("bool"));
  EXPECT_EQ(f.get_string("string"), "héllo");
  EXPECT_EQ(f.get_string_array("strings"), (std::vector<std::string>{"a", "", "b c"}));
  EXPECT_EQ(f.get_int_array("ints"), (std::vector<int64_t>{-1, 0, 7}));
  const GgufValue* f64_array = f.find("f64s");
  ASSERT_NE(f64_array, nullptr);
  EXPECT_EQ(f64_array->count, 2u);
  EXPECT_EQ(f64_array->float_at(1), -2.25);
  const GgufValue* n = f.find("nested");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->arrays.size(), 2u);
  EXPECT_EQ(n->arrays[0].int_at(1), 2);
  EXPECT_EQ(n->arrays[1].strings, std::vector<std::string>{"x"});
  EXPECT_EQ(f.get_int_array("empty").size(), 0u);
  EXPECT_FALSE(f.get_int_opt("absent").has_value());
  EXPECT_EQ(f.alignment(), 32u);  // default
  EXPECT_TRUE(f.tensors().empty());

  // Wrong types and missing keys name the file and the key.
  for (auto call : std::vector<std::function<void()>>{
           [&] { f.get_int("string"); }, [&] { f.get_string("u8"); }, [&] { f.get_bool("u8"); },
           [&] { f.get_float("strings"); }, [&] { f.get_string_array("ints"); },
           [&] { f.get_int_array("strings"); }, [&] { f.get_int("absent"); }}) {
    try {
      call();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(GgufReader, TensorInfosAndDefaultAlignment) {
  TempDir dir;
  GgufBuilder g;
  g.tensor({"a", {3}, 0, f32_bytes({1, 2, 3}), {}});  // 12 bytes → next at 32
  g.tensor({"b", {2, 2}, 0, f32_bytes({4, 5, 6, 7}), {}});
  const std::string path = dir.write("t.gguf", g.build());
  const GgufFile f = GgufFile::open(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  const GgufTensorInfo& b = f.tensor("b");
  EXPECT_EQ(b.offset, 32u);
  EXPECT_EQ(b.ne, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(b.size_bytes, 16u);
  EXPECT_EQ(b.numel(), 4);
  EXPECT_EQ(dequantize_tensor(b, path), (std::vector<float>{4, 5, 6, 7}));
  EXPECT_EQ(dequantize_tensor(f.tensor("a"), path), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(f.find_tensor("c"), nullptr);
  EXPECT_THROW(f.tensor("c"), Error);
}

TEST(GgufReader, ExplicitAlignment) {
  TempDir dir;
  GgufBuilder g;
  g.alignment = 64;
  g.kv_u32("general.alignment", 64);
  g.tensor({"a", {5}, 0, f32_bytes({1, 2, 3, 4, 5}), {}});
  g.tensor({"b", {1}, 0, f32_bytes({9}), {}});
  const std::string path = dir.write("a64.gguf", g.build());
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor("b").offset, 64u);
  EXPECT_EQ(dequantize_tensor(f.tensor("b"), path), std::vector<float>{9});

  // Version 2 has the same layout and is accepted.
  g.version = 2;
  EXPECT_EQ(GgufFile::open(dir.write("v2.gguf", g.build())).version(), 2u);
}

TEST(GgufTokenizer, BpeSpecFromMetadata) {
  TempDir dir;
  const std::string path = dir.write("tiny.gguf", tiny_llama_gguf().build());
  const GgufFile f = GgufFile::open(path);
  ASSERT_TRUE(gguf_has_tokenizer(f));
  const BpeSpec spec = bpe_spec_from_gguf(f);
  EXPECT_EQ(spec.tokens, tiny_tokens());
  ASSERT_EQ(spec.merges.size(), 3u);
  EXPECT_EQ(spec.merges[1], (std::pair<std::string, std::string>{"Ġ", "t"}));
  EXPECT_EQ(spec.merges[2], (std::pair<std::string, std::string>{"b4", "c5"}));
  ASSERT_EQ(spec.added_tokens.size(), 4u);  // ids 0, 1, 2 (control) and 5 (user-defined)
  EXPECT_EQ(spec.added_tokens[1].id, 1);
  EXPECT_EQ(spec.added_tokens[1].content, "<|im_start|>");
  EXPECT_TRUE(spec.added_tokens[1].special);
  EXPECT_EQ(spec.added_tokens[3].id, 5);
  EXPECT_FALSE(spec.added_tokens[3].special);
  EXPECT_EQ(spec.pre_tokenizer, "smollm");
  EXPECT_EQ(spec.bos_id, 1);
  EXPECT_EQ(spec.eos_id, 2);
  EXPECT_EQ(spec.pad_id, 2);
  EXPECT_EQ(spec.unk_id, -1);
  EXPECT_EQ(spec.chat_template, "{{ messages }}");
}

TEST(GgufTokenizer, RejectsBadTokenizerMetadata) {
  TempDir dir;
  auto expect_error = [&](GgufBuilder g, const std::string& phrase) {
    const std::string path = dir.write("tok.gguf", g.build());
    const GgufFile f = GgufFile::open(path);
    try {
      bpe_spec_from_gguf(f);
      ADD_FAILURE() << "no error, expected " << phrase;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  GgufBuilder spm;
  spm.kv_string("tokenizer.ggml.model", "llama");
  expect_error(spm, "only byte-level BPE");
  GgufBuilder bad_merge;
  bad_merge.kv_string("tokenizer.ggml.model", "gpt2");
  bad_merge.kv_string_array("tokenizer.ggml.tokens", {"a", "b"});
  bad_merge.kv_string_array("tokenizer.ggml.merges", {"ab"});
  expect_error(bad_merge, "merges[0]");
  GgufBuilder bad_types;
  bad_types.kv_string("tokenizer.ggml.model", "gpt2");
  bad_types.kv_string_array("tokenizer.ggml.tokens", {"a", "b"});
  bad_types.kv_string_array("tokenizer.ggml.merges", {"a b"});
  bad_types.kv_i32_array("tokenizer.ggml.token_type", {1});
  expect_error(bad_types, "token_type has 1 entries");
  GgufBuilder bad_id;
  bad_id.kv_string("tokenizer.ggml.model", "gpt2");
  bad_id.kv_string_array("tokenizer.ggml.tokens", {"a", "b"});
  bad_id.kv_string_array("tokenizer.ggml.merges", {"a b"});
  bad_id.kv_u32("tokenizer.ggml.eos_token_id", 7);
  expect_error(bad_id, "outside the vocabulary");
}

// ---- malformed files ----------------------------------------------------------------------

// A small file with every structural element: scalar/string/array metadata, tokenizer keys,
// and tensors of a few types (so truncation lands in each part).
Bytes small_structured_file() {
  GgufBuilder g;
  g.kv_string("general.architecture", "llama");
  g.kv_u32("general.alignment", 32);
  g.kv_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
  g.kv_i32_array("tokenizer.ggml.token_type", {3, 1, 1});
  g.kv<double>("f64", kF64, 2.5);
  g.tensor({"norm", {8}, 0, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}), {}});
  g.tensor({"q8", {32}, 8, Bytes(34, 1), {}});
  g.tensor({"q4k", {256}, 12, Bytes(144, 2), {}});
  return g.build();
}

TEST(GgufMalformed, TruncatedAtEveryCutPoint) {
  TempDir dir;
  const Bytes full = small_structured_file();
  const std::string path = dir.write("cut.gguf", full);
  ASSERT_NO_THROW(GgufFile::open(path));
  // Every cut must fail: the last tensor's bytes reach the end of the file.
  for (size_t cut = 0; cut < full.size(); ++cut) {
    dir.write("cut.gguf", Bytes(full.begin(), full.begin() + cut));
    try {
      GgufFile::open(path);
      ADD_FAILURE() << "no error for a file cut at " << cut << " of " << full.size();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(GgufMalformed, HeaderErrors) {
  TempDir dir;
  GgufBuilder g = one_tensor_file();
  g.magic = 0x46554746;
  expect_gguf_error(dir.write("magic.gguf", g.build()), "bad magic");
  g = one_tensor_file();
  g.version = 1;
  expect_gguf_error(dir.write("v1.gguf", g.build()), "unsupported GGUF version 1");
  g.version = 4;
  expect_gguf_error(dir.write("v4.gguf", g.build()), "unsupported GGUF version 4");
  g.version = 0x03000000;
  expect_gguf_error(dir.write("be.gguf", g.build()), "big-endian");
  expect_gguf_error(dir.write("empty.gguf", {}), "not a GGUF file");
  g = one_tensor_file();
  g.tensor_count_override = 1ull << 60;
  expect_gguf_error(dir.write("tcount.gguf", g.build()), "absurd tensor count");
  g = one_tensor_file();
  g.kv_count_override = ~0ull;
  expect_gguf_error(dir.write("kvcount.gguf", g.build()), "absurd metadata kv count");
  g = one_tensor_file();
  g.kv_count_override = 2;  // one more kv than present: the tensor info is read as a kv
  try {
    GgufFile::open(dir.write("kv_extra.gguf", g.build()));
    ADD_FAILURE() << "no error";
  } catch (const Error&) {
  }
}

TEST(GgufMalformed, MetadataErrors) {
  TempDir dir;
  GgufBuilder g = one_tensor_file();
  Bytes huge_array;
  put<uint32_t>(huge_array, kU32);
  put<uint64_t>(huge_array, 1ull << 62);
  g.kv_raw("huge", kArray, huge_array);
  expect_gguf_error(dir.write("arr.gguf", g.build()), "cannot fit");
  g = one_tensor_file();
  Bytes huge_string;
  put<uint64_t>(huge_string, 1ull << 50);
  g.kv_raw("s", kString, huge_string);
  expect_gguf_error(dir.write("str.gguf", g.build()), "claims");
  g = one_tensor_file();
  g.kv<uint32_t>("bad", 13, 0);
  expect_gguf_error(dir.write("vtype.gguf", g.build()), "unknown value type 13");
  g = one_tensor_file();
  Bytes bad_elem;
  put<uint32_t>(bad_elem, 77);
  put<uint64_t>(bad_elem, 0);
  g.kv_raw("a", kArray, bad_elem);
  expect_gguf_error(dir.write("etype.gguf", g.build()), "unknown array element type 77");
  g = one_tensor_file();
  Bytes deep;  // arrays nested 9 deep
  for (int i = 0; i < 9; ++i) {
    put<uint32_t>(deep, kArray);
    put<uint64_t>(deep, 1);
  }
  put<uint32_t>(deep, kU8);
  put<uint64_t>(deep, 0);
  g.kv_raw("deep", kArray, deep);
  expect_gguf_error(dir.write("deep.gguf", g.build()), "nested deeper");
  g = one_tensor_file();
  g.kv_u32("general.architecture", 1);  // duplicate key
  expect_gguf_error(dir.write("dupkey.gguf", g.build()), "duplicate metadata key");
  g = one_tensor_file();
  g.kv_u32("general.alignment", 48);
  expect_gguf_error(dir.write("align.gguf", g.build()), "not a power of two");
  g = one_tensor_file();
  g.kv_string("general.alignment", "32");
  expect_gguf_error(dir.write("aligntype.gguf", g.build()), "general.alignment has type string");
}

TEST(GgufMalformed, TensorInfoErrors) {
  TempDir dir;
  auto file_with = [](GgufTensorSpec t) {
    GgufBuilder g = one_tensor_file();
    g.tensor(std::move(t));
    return g.build();
  };
  expect_gguf_error(
      dir.write("ndims5.gguf", file_with({"t5", {1, 1, 1, 1, 1}, 0, f32_bytes({1}), {}})),
      "n_dims 5");
  expect_gguf_error(dir.write("ndims0.gguf", file_with({"t0", {}, 0, {}, {}})), "n_dims 0");
  expect_gguf_error(dir.write("type.gguf", file_with({"tt", {4}, 99, f32_bytes({1, 2, 3, 4}), {}})),
                    "unknown ggml type 99");
  expect_gguf_error(dir.write("misaligned.gguf", file_with({"tm", {1}, 0, f32_bytes({1}), 36})),
                    "not a multiple of the alignment 32");
  expect_gguf_error(dir.write("past.gguf", file_with({"tp", {1}, 0, f32_bytes({1}), 1 << 20})),
                    "past the end");
  expect_gguf_error(
      dir.write("overlap.gguf", file_with({"to", {8}, 0, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}), 0})),
      "overlap");
  expect_gguf_error(dir.write("dup.gguf", file_with({"w", {1}, 0, f32_bytes({1}), {}})),
                    "duplicate tensor name 'w'");
  expect_gguf_error(dir.write("block.gguf", file_with({"tb", {16}, 8, Bytes(34, 0), {}})),
                    "not a multiple of its block size 32");
  expect_gguf_error(dir.write("shape.gguf", file_with({"ts", {1ull << 40, 1ull << 40}, 0, {}, {}})),
                    "absurd shape");
  expect_gguf_error(
      dir.write("name.gguf", file_with({std::string(5000, 'n'), {1}, 0, f32_bytes({1}), {}})),
      "tensor name");
  // A type ggml knows but this engine cannot dequantise: parsed, then refused by name.
  TempDir dir2;
  const std::string q2k = dir2.write("q2k.gguf", file_with({"tq", {256}, 10, Bytes(84, 0), {}}));
  const GgufFile f = GgufFile::open(q2k);
  try {
    dequantize_tensor(f.tensor("tq"), q2k);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q2_K"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'tq'"), std::string::npos) << e.what();
  }
}

// Flips, overwrites and truncates bytes of a valid file (fixed seed). Every outcome must be a
// clean parse or a smol::Error: never a crash, hang or other exception (run under ASan+UBSan
// by the weights_sanitized target).
TEST(GgufMalformed, MutationFuzzNeverCrashes) {
  TempDir dir;
  GgufBuilder g = tiny_llama_gguf();
  std::mt19937_64 rng(12345);
  for (uint32_t type : {8u, 2u, 3u, 6u, 7u, 12u, 14u, 1u, 30u}) {
    const GgmlTypeTraits traits = ggml_type_traits(type);
    Bytes data(static_cast<size_t>(traits.block_bytes * (256 / traits.block_elems)));
    for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
    g.tensor({std::string("extra.") + traits.name, {256}, type, data, {}});
  }
  const Bytes base = g.build();
  const std::string path = dir.file("fuzz.gguf");
  int parsed = 0, rejected = 0;
  for (int iteration = 0; iteration < 400; ++iteration) {
    Bytes bytes = base;
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {
      bytes.resize(rng() % bytes.size());
    } else {
      const int edits = 1 + static_cast<int>(rng() % 8);
      // Most edits in the header/metadata/infos, where the structure lives.
      const size_t structure = std::min<size_t>(bytes.size(), 2200);
      for (int e = 0; e < edits; ++e) {
        const size_t at = (kind == 3 ? rng() % bytes.size() : rng() % structure);
        if (kind == 1)
          bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
        else
          bytes[at] = static_cast<uint8_t>(rng() % 2 ? 0xFF : rng());
      }
    }
    dir.write("fuzz.gguf", bytes);
    try {
      const GgufFile f = GgufFile::open(path);
      for (const GgufTensorInfo& t : f.tensors())
        if (ggml_type_dequantizable(t.type)) (void)dequantize_tensor(t, path);
      if (gguf_has_tokenizer(f)) (void)bpe_spec_from_gguf(f);
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << iteration << ": non-smol exception " << e.what();
    }
  }
  EXPECT_GT(rejected, 100);  // the mutations do reach the checks
  EXPECT_GT(parsed, 10);     // and data-only edits still parse
}

}  // namespace
}  // namespace smol

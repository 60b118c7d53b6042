// safetensors tests (docs/formats.md §4): hand-built files of every float dtype (and integer ones)
// load exactly; the atomic writer round-trips and writes what the format requires; every
// malformed header is refused with an error naming the file; a seeded mutation fuzz.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "common/error.h"
#include "io/dequantize.h"
#include "io/safetensors_io.h"
#include "tests/weights/test_files.h"

namespace smol {
namespace {

using namespace smol::test;

void expect_st_error(const std::string& path, const std::string& phrase) {
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "no error for " << path << " (expected '" << phrase << "')";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(phrase), std::string::npos) << "expected '" << phrase << "' in: " << msg;
  }
}

TEST(Safetensors, HandBuiltEveryDtypeLoadsExactly) {
  TempDir dir;
  Bytes buffer;
  for (float v : {1.5f, -2.0f}) put<float>(buffer, v);                   // F32 [0, 8)
  for (uint16_t v : {0x3C00, 0xB800, 0x7BFF}) put<uint16_t>(buffer, v);  // F16 [8, 14)
  for (uint16_t v : {0x3F80, 0xC040}) put<uint16_t>(buffer, v);          // BF16 [14, 18)
  for (int32_t v : {-7, 1 << 30}) put<int32_t>(buffer, v);               // I32 [18, 26)
  for (int64_t v : {-(1ll << 40), 5ll}) put<int64_t>(buffer, v);         // I64 [26, 42)
  put<uint8_t>(buffer, 200);                                             // U8 [42, 43)
  const std::string header = R"({"__metadata__":{"format":"pt","note":"x"},)"
                             R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("h":{"dtype":"F16","shape":[3,1],"data_offsets":[8,14]},)"
                             R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[14,18]},)"
                             R"("i":{"dtype":"I32","shape":[2],"data_offsets":[18,26]},)"
                             R"("l":{"dtype":"I64","shape":[2],"data_offsets":[26,42]},)"
                             R"("u":{"dtype":"U8","shape":[],"data_offsets":[42,43]}}   )";
  const std::string path = dir.write("all.safetensors", safetensors_bytes(header, buffer));
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.entries().size(), 6u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "x");
  const HostTensor a = f.read_f32("a");
  EXPECT_EQ(a.stored_dtype, "F32");
  EXPECT_EQ(a.shape, (Shape{2}));
  EXPECT_EQ(a.data, (std::vector<float>{1.5f, -2.0f}));
  const HostTensor h = f.read_f32("h");
  EXPECT_EQ(h.stored_dtype, "F16");
  EXPECT_EQ(h.shape, (Shape{3, 1}));
  EXPECT_EQ(h.data, (std::vector<float>{1.0f, -0.5f, 65504.0f}));
  const HostTensor b = f.read_f32("b");
  EXPECT_EQ(b.stored_dtype, "BF16");
  EXPECT_EQ(b.data, (std::vector<float>{1.0f, -3.0f}));
  EXPECT_EQ(f.read_i32("i"), (std::vector<int32_t>{-7, 1 << 30}));
  EXPECT_EQ(f.read_i64("l"), (std::vector<int64_t>{-(1ll << 40), 5}));
  EXPECT_EQ(f.read_i64("u"), std::vector<int64_t>{200});
  EXPECT_THROW(f.read_i32("l"), Error);  // -2^40 does not fit int32
  EXPECT_THROW(f.read_f32("i"), Error);  // not a float tensor
  EXPECT_THROW(f.read_i64("a"), Error);
  EXPECT_THROW(f.entry("missing"), Error);
}

TEST(Safetensors, WriterRoundTripAndLayout) {
  TempDir dir;
  const std::string path = dir.file("out.safetensors");
  const std::vector<float> values = {0.1f, -1e-30f, 3.0f, 1.0f + std::ldexp(1.0f, -8), 7, 8};
  const std::vector<int32_t> ids = {1, -2, 3};
  write_safetensors(path,
                    {SafetensorsWriteEntry::f32("z.weight", {2, 3}, values.data()),
                     SafetensorsWriteEntry::i32("a.ids", {3}, ids.data()),
                     SafetensorsWriteEntry::bf16("m.half", {6}, values.data())},
                    {{"step", "7"}});
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("step"), "7");
  EXPECT_EQ(f.read_f32("z.weight").data, values);
  EXPECT_EQ(f.read_f32("z.weight").shape, (Shape{2, 3}));
  EXPECT_EQ(f.read_i32("a.ids"), ids);
  const HostTensor half = f.read_f32("m.half");
  EXPECT_EQ(half.stored_dtype, "BF16");
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(half.data[i], bf16_to_fp32(fp32_to_bf16(values[i]))) << i;
  EXPECT_EQ(half.data[3], 1.0f);  // tie rounds to even
  // Header length is a multiple of 8, so the data buffer starts 8-aligned.
  std::ifstream in(path, std::ios::binary);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  EXPECT_EQ(header_len % 8, 0u);
  // Entries laid out in name order.
  EXPECT_EQ(f.entry("a.ids").begin, 0u);
  EXPECT_LT(f.entry("m.half").begin, f.entry("z.weight").begin);

  // Overwrite is atomic replacement; bad entries throw and leave the old file intact.
  EXPECT_THROW(write_safetensors(path, {SafetensorsWriteEntry::f32("x", {2}, values.data()),
                                        SafetensorsWriteEntry::f32("x", {1}, values.data())}),
               Error);
  SafetensorsWriteEntry wrong = SafetensorsWriteEntry::f32("y", {2}, values.data());
  wrong.shape = {3};
  EXPECT_THROW(write_safetensors(path, {wrong}), Error);
  EXPECT_EQ(SafetensorsFile::open(path).read_i32("a.ids"), ids);
  EXPECT_THROW(write_safetensors(dir.file("no/such/dir/x.safetensors"), {}), Error);
}

TEST(SafetensorsMalformed, EveryHeaderError) {
  TempDir dir;
  const Bytes four_floats(16, 0);
  auto file = [&](const char* name, const std::string& header, const Bytes& buffer) {
    return dir.write(name, safetensors_bytes(header, buffer));
  };
  expect_st_error(dir.write("tiny.safetensors", {1, 2, 3}), "truncated");
  Bytes huge_len;
  put<uint64_t>(huge_len, 200'000'000);
  expect_st_error(dir.write("len.safetensors", huge_len), "exceeds");
  Bytes past_len;
  put<uint64_t>(past_len, 1000);
  past_len.push_back('{');
  expect_st_error(dir.write("past.safetensors", past_len), "runs past the end");
  expect_st_error(file("brace.safetensors", "[1,2]   ", {}), "does not start with '{'");
  expect_st_error(file("json.safetensors", "{\"a\":   ", {}), "not valid JSON");
  expect_st_error(file("dtype.safetensors",
                       R"({"a":{"dtype":"F17","shape":[4],"data_offsets":[0,16]}})", four_floats),
                  "unknown dtype 'F17'");
  expect_st_error(file("size.safetensors",
                       R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", four_floats),
                  "needs 12 bytes but data_offsets span 16");
  expect_st_error(file("overlap.safetensors",
                       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}})",
                       four_floats),
                  "overlaps");
  expect_st_error(file("hole.safetensors",
                       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                       four_floats),
                  "hole");
  expect_st_error(file("start.safetensors",
                       R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}})", four_floats),
                  "hole");
  expect_st_error(file("tail.safetensors",
                       R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", four_floats),
                  "data buffer but it has 16 bytes");
  expect_st_error(file("beyond.safetensors",
                       R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", four_floats),
                  "runs past");
  expect_st_error(file("neg.safetensors",
                       R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", four_floats),
                  "not a non-negative integer");
  expect_st_error(file("offs.safetensors",
                       R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0]}})", four_floats),
                  "data_offsets must be");
  expect_st_error(file("rev.safetensors",
                       R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}})", four_floats),
                  "end 0 < begin 16");
  expect_st_error(file("meta.safetensors", R"({"__metadata__":{"format":1}})", {}), "not a string");
  expect_st_error(
      file("noshape.safetensors", R"({"a":{"dtype":"F32","data_offsets":[0,16]}})", four_floats),
      "has no 'shape'");
  expect_st_error(
      file("absurd.safetensors",
           R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}})",
           four_floats),
      "absurd shape");
  expect_st_error(dir.file("absent.safetensors"), "cannot open");
  // Rank 5 is valid safetensors but not a HostTensor: refused by read_f32 with a clear error.
  const std::string rank5 =
      file("rank5.safetensors",
           R"({"a":{"dtype":"F32","shape":[1,1,1,1,4],"data_offsets":[0,16]}})", four_floats);
  EXPECT_THROW(SafetensorsFile::open(rank5).read_f32("a"), Error);
}

TEST(SafetensorsMalformed, MutationFuzzNeverCrashes) {
  TempDir dir;
  const std::string path = dir.file("fuzz.safetensors");
  std::vector<float> values(64);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) * 0.5f;
  std::vector<int32_t> ids = {1, 2, 3, 4};
  write_safetensors(path, {SafetensorsWriteEntry::f32("a.weight", {8, 8}, values.data()),
                           SafetensorsWriteEntry::bf16("b.weight", {64}, values.data()),
                           SafetensorsWriteEntry::i32("c", {2, 2}, ids.data())});
  std::ifstream in(path, std::ios::binary);
  const Bytes base((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937_64 rng(777);
  int parsed = 0, rejected = 0;
  for (int iteration = 0; iteration < 300; ++iteration) {
    Bytes bytes = base;
    if (rng() % 4 == 0) {
      bytes.resize(rng() % bytes.size());
    } else {
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        // Mostly inside the 8-byte length and the JSON header, where the structure lives.
        const size_t at = rng() % std::min<size_t>(bytes.size(), 260);
        bytes[at] = static_cast<uint8_t>(rng() % 3 == 0 ? "0123456789[]{},\":"[rng() % 17] : rng());
      }
    }
    dir.write("fuzz.safetensors", bytes);
    try {
      const SafetensorsFile f = SafetensorsFile::open(path);
      for (const SafetensorsEntry& e : f.entries()) {
        if (e.dtype == "F32" || e.dtype == "BF16" || e.dtype == "F16")
          (void)f.read_f32(e.name);
        else
          (void)f.read_i64(e.name);
      }
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << iteration << ": non-smol exception " << e.what();
    }
  }
  EXPECT_GT(rejected, 100);
}

}  // namespace
}  // namespace smol

// safetensors reader/writer (docs/formats.md §4; huggingface/safetensors safetensors/src/tensor.rs
// validate()). Layout: u64 LE header length N, N bytes of JSON, then the data buffer.
#include "io/safetensors_io.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "io/dequantize.h"

namespace smol {
namespace {

using nlohmann::json;

uint64_t shape_numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& d) {
  if (d == "BOOL" || d == "U8" || d == "I8" || d == "F8_E5M2" || d == "F8_E4M3") return 1;
  if (d == "I16" || d == "U16" || d == "F16" || d == "BF16") return 2;
  if (d == "I32" || d == "U32" || d == "F32") return 4;
  if (d == "I64" || d == "U64" || d == "F64") return 8;
  return 0;
}

int64_t SafetensorsEntry::numel() const {
  return static_cast<int64_t>(shape_numel(shape));
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile st;
  st.file_ = std::make_shared<MappedFile>(path);
  const uint64_t file_size = st.file_->size();
  const uint8_t* bytes = st.file_->bytes();
  if (file_size < 8)
    throw_error(path, ": truncated safetensors file (", file_size,
                " bytes; the 8-byte header length is missing)");
  uint64_t header_len;
  std::memcpy(&header_len, bytes, 8);
  if (header_len > kMaxHeaderBytes)
    throw_error(path, ": safetensors header length ", header_len, " exceeds the ", kMaxHeaderBytes,
                "-byte limit");
  if (header_len > file_size - 8)
    throw_error(path, ": safetensors header length ", header_len, " runs past the end of the ",
                file_size, "-byte file (truncated?)");
  if (header_len < 2 || bytes[8] != '{')
    throw_error(path, ": safetensors header does not start with '{'");
  const char* header_text = reinterpret_cast<const char*>(bytes + 8);
  json header;
  try {
    header = json::parse(header_text, header_text + header_len);
  } catch (const json::exception& e) {
    throw_error(path, ": safetensors header is not valid JSON: ", e.what());
  }
  if (!header.is_object()) throw_error(path, ": safetensors header is not a JSON object");

  const uint64_t buffer_size = file_size - 8 - header_len;
  const uint8_t* buffer = bytes + 8 + header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object()) throw_error(path, ": __metadata__ is not a JSON object");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string())
          throw_error(path, ": __metadata__ value of '", m.key(), "' is not a string");
        st.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto field = [&](const char* key) -> const json& {
      if (!value.is_object() || !value.contains(key))
        throw_error(path, ": tensor '", name, "' has no '", key, "'");
      return value.at(key);
    };
    SafetensorsEntry e;
    e.name = name;
    const json& dtype = field("dtype");
    if (!dtype.is_string()) throw_error(path, ": tensor '", name, "': dtype is not a string");
    e.dtype = dtype.get<std::string>();
    const size_t elem_size = safetensors_dtype_size(e.dtype);
    if (elem_size == 0)
      throw_error(path, ": tensor '", name, "' has unknown dtype '", e.dtype, "'");
    const json& shape = field("shape");
    if (!shape.is_array()) throw_error(path, ": tensor '", name, "': shape is not an array");
    uint64_t numel = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned())
        throw_error(path, ": tensor '", name, "': shape entry ", d.dump(),
                    " is not a non-negative integer");
      const uint64_t extent = d.get<uint64_t>();
      if (extent > (uint64_t{1} << 60) || (extent != 0 && numel > (uint64_t{1} << 60) / extent))
        throw_error(path, ": tensor '", name, "' has an absurd shape ", shape.dump());
      numel *= extent;
      e.shape.push_back(static_cast<int64_t>(extent));
    }
    const json& offsets = field("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      throw_error(path, ": tensor '", name, "': data_offsets must be [begin, end], got ",
                  offsets.dump());
    e.begin = offsets[0].get<uint64_t>();
    e.end = offsets[1].get<uint64_t>();
    if (e.end < e.begin)
      throw_error(path, ": tensor '", name, "': data_offsets end ", e.end, " < begin ", e.begin);
    if (e.end - e.begin != numel * elem_size)
      throw_error(path, ": tensor '", name, "': ", e.dtype, " ", shape.dump(), " needs ",
                  numel * elem_size, " bytes but data_offsets span ", e.end - e.begin);
    if (e.end > buffer_size)
      throw_error(path, ": tensor '", name, "' data [", e.begin, ", ", e.end, ") runs past the ",
                  buffer_size, "-byte data buffer (truncated?)");
    e.data = buffer + e.begin;
    st.entries_.push_back(std::move(e));
  }

  // Contiguity: sorted by begin, the entries must tile [0, buffer_size) exactly.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const SafetensorsEntry& e : st.entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
              return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
            });
  uint64_t expected_begin = 0;
  for (const SafetensorsEntry* e : by_offset) {
    if (e->begin < expected_begin)
      throw_error(path, ": tensor '", e->name, "' data [", e->begin, ", ", e->end,
                  ") overlaps the previous tensor (which ends at ", expected_begin, ")");
    if (e->begin > expected_begin)
      throw_error(path, ": hole in the data buffer: bytes [", expected_begin, ", ", e->begin,
                  ") before tensor '", e->name, "' belong to no tensor");
    expected_begin = e->end;
  }
  if (expected_begin != buffer_size)
    throw_error(path, ": the tensors end at byte ", expected_begin,
                " of the data buffer but it has ", buffer_size, " bytes");

  std::sort(st.entries_.begin(), st.entries_.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });
  for (size_t i = 0; i < st.entries_.size(); ++i) st.index_[st.entries_[i].name] = i;
  return st;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (e == nullptr) throw_error(path(), ": missing tensor '", name, "'");
  return *e;
}

HostTensor SafetensorsFile::read_f32(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  SMOL_CHECK(e.shape.size() <= static_cast<size_t>(kMaxDims), path(), ": tensor '", name,
             "' has rank ", e.shape.size(), " (at most ", kMaxDims, " supported)");
  HostTensor t;
  t.shape.rank = static_cast<int>(e.shape.size());
  for (size_t i = 0; i < e.shape.size(); ++i) t.shape.dims[i] = e.shape[i];
  t.stored_dtype = e.dtype;
  const size_t n = static_cast<size_t>(e.numel());
  t.data.resize(n);
  if (e.dtype == "F32") {
    std::memcpy(t.data.data(), e.data, n * 4);
  } else if (e.dtype == "F16" || e.dtype == "BF16") {
    const bool is_bf16 = e.dtype == "BF16";
    // Serial on purpose: memory-bound, and the loader calls this once per tensor (hundreds of
    // short OpenMP regions cost more in barriers than they gain on busy cores).
    for (size_t i = 0; i < n; ++i) {
      uint16_t bits;
      std::memcpy(&bits, e.data + 2 * i, 2);
      t.data[i] = is_bf16 ? bf16_to_fp32(bits) : fp16_to_fp32(bits);
    }
  } else {
    throw_error(path(), ": tensor '", name, "' has dtype ", e.dtype,
                "; expected a float tensor (F32, F16 or BF16)");
  }
  return t;
}

std::vector<int64_t> SafetensorsFile::read_i64(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const size_t n = static_cast<size_t>(e.numel());
  std::vector<int64_t> out(n);
  const uint8_t* p = e.data;
  auto load = [&](auto v, size_t i) {
    std::memcpy(&v, p + i * sizeof(v), sizeof(v));
    return v;
  };
  for (size_t i = 0; i < n; ++i) {
    if (e.dtype == "I64")
      out[i] = load(int64_t{}, i);
    else if (e.dtype == "I32")
      out[i] = load(int32_t{}, i);
    else if (e.dtype == "I16")
      out[i] = load(int16_t{}, i);
    else if (e.dtype == "I8")
      out[i] = load(int8_t{}, i);
    else if (e.dtype == "U32")
      out[i] = load(uint32_t{}, i);
    else if (e.dtype == "U16")
      out[i] = load(uint16_t{}, i);
    else if (e.dtype == "U8" || e.dtype == "BOOL")
      out[i] = load(uint8_t{}, i);
    else if (e.dtype == "U64") {
      const uint64_t v = load(uint64_t{}, i);
      SMOL_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), path(),
                 ": tensor '", name, "' element ", i, " = ", v, " does not fit int64");
      out[i] = static_cast<int64_t>(v);
    } else {
      throw_error(path(), ": tensor '", name, "' has dtype ", e.dtype,
                  "; expected an integer tensor");
    }
  }
  return out;
}

std::vector<int32_t> SafetensorsFile::read_i32(const std::string& name) const {
  const std::vector<int64_t> wide = read_i64(name);
  std::vector<int32_t> out(wide.size());
  for (size_t i = 0; i < wide.size(); ++i) {
    SMOL_CHECK(wide[i] >= std::numeric_limits<int32_t>::min() &&
                   wide[i] <= std::numeric_limits<int32_t>::max(),
               path(), ": tensor '", name, "' element ", i, " = ", wide[i], " does not fit int32");
    out[i] = static_cast<int32_t>(wide[i]);
  }
  return out;
}

// ---- writer -------------------------------------------------------------------------------

SafetensorsWriteEntry SafetensorsWriteEntry::f32(std::string name, std::vector<int64_t> shape,
                                                 const float* values) {
  SafetensorsWriteEntry e{std::move(name), "F32", std::move(shape), {}};
  e.bytes.resize(shape_numel(e.shape) * 4);
  if (!e.bytes.empty()) std::memcpy(e.bytes.data(), values, e.bytes.size());
  return e;
}

SafetensorsWriteEntry SafetensorsWriteEntry::bf16(std::string name, std::vector<int64_t> shape,
                                                  const float* values) {
  SafetensorsWriteEntry e{std::move(name), "BF16", std::move(shape), {}};
  const uint64_t n = shape_numel(e.shape);
  e.bytes.resize(n * 2);
  for (uint64_t i = 0; i < n; ++i) {
    const uint16_t bits = fp32_to_bf16(values[i]);
    std::memcpy(e.bytes.data() + 2 * i, &bits, 2);
  }
  return e;
}

SafetensorsWriteEntry SafetensorsWriteEntry::i32(std::string name, std::vector<int64_t> shape,
                                                 const int32_t* values) {
  SafetensorsWriteEntry e{std::move(name), "I32", std::move(shape), {}};
  e.bytes.resize(shape_numel(e.shape) * 4);
  if (!e.bytes.empty()) std::memcpy(e.bytes.data(), values, e.bytes.size());
  return e;
}

SafetensorsWriteEntry SafetensorsWriteEntry::from_host(std::string name, const HostTensor& t) {
  std::vector<int64_t> shape(t.shape.dims.begin(), t.shape.dims.begin() + t.shape.rank);
  SMOL_CHECK(static_cast<int64_t>(t.data.size()) == t.shape.numel(), "tensor '", name,
             "': ", t.data.size(), " values for shape ", t.shape.str());
  return f32(std::move(name), std::move(shape), t.data.data());
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const SafetensorsWriteEntry*> sorted;
  for (const SafetensorsWriteEntry& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });

  json header = json::object();
  json meta = json::object();
  for (const auto& [key, value] : metadata) meta[key] = value;
  meta["format"] = "pt";  // transformers/PEFT reject files without it (docs/formats.md §4)
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const SafetensorsWriteEntry& e = *sorted[i];
    SMOL_CHECK(i == 0 || sorted[i - 1]->name != e.name, path, ": duplicate tensor name '", e.name,
               "'");
    SMOL_CHECK(e.name != "__metadata__" && !e.name.empty(), path, ": invalid tensor name '", e.name,
               "'");
    const size_t elem_size = safetensors_dtype_size(e.dtype);
    SMOL_CHECK(elem_size != 0, path, ": tensor '", e.name, "' has unknown dtype '", e.dtype, "'");
    for (int64_t d : e.shape)
      SMOL_CHECK(d >= 0, path, ": tensor '", e.name, "' has a negative dimension");
    SMOL_CHECK(shape_numel(e.shape) * elem_size == e.bytes.size(), path, ": tensor '", e.name,
               "' holds ", e.bytes.size(), " bytes but its shape needs ",
               shape_numel(e.shape) * elem_size);
    header[e.name] = {{"dtype", e.dtype},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data buffer starts 8-aligned

  write_file_atomically(path, [&](std::ostream& out) {
    const uint64_t header_len = text.size();
    out.write(reinterpret_cast<const char*>(&header_len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const SafetensorsWriteEntry* e : sorted)
      out.write(reinterpret_cast<const char*>(e->bytes.data()),
                static_cast<std::streamsize>(e->bytes.size()));
  });
}

}  // namespace smol

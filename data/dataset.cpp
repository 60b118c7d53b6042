// JSONL and JSON-array dataset readers (see dataset.h).
#include "data/dataset.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "common/error.h"
#include "common/quote.h"
#include "common/regular_file.h"
#include "data/bounded_json.h"
#include "data/python_float.h"

namespace smol {

namespace {

// ordered_json keeps keys in file order, which is the column order HF builds.
using json = nlohmann::ordered_json;

// Dataset rows are flat objects; nesting is bounded while parsing (data/bounded_json.h) so that a
// row of 200000 '[' cannot overflow the stack when a cell's text is dumped later.

// nlohmann's parse messages quote the last token read, which may be a whole 1 MB string.
std::string short_json_error(const std::exception& e) {
  return quoted_excerpt(e.what(), 200);
}

std::string read_whole_file(const std::string& path) {
  require_regular_file(path, "dataset file");
  std::ifstream in(path, std::ios::binary);
  SMOL_CHECK(in, path, ": cannot open dataset file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  SMOL_CHECK(!in.bad(), path, ": read error");
  return buffer.str();
}

// The text the seed's str(value) gives for a JSON value (docs/seed-behaviour.md §2.3).
DatasetCell cell_from_json(const json& value) {
  DatasetCell cell;
  if (value.is_null()) {
    cell.state = DatasetCell::State::Null;
    return cell;
  }
  cell.state = DatasetCell::State::Text;
  if (value.is_string())
    cell.text = value.get<std::string>();
  else if (value.is_boolean())
    cell.text = value.get<bool>() ? "True" : "False";
  else if (value.is_number_float())  // Python's str(float): repr rules, e.g. 1e15 ->
                                     // 1000000000000000.0
    cell.text = python_float_repr(value.get<double>());
  else  // integers as written; containers: compact JSON
    cell.text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return cell;
}

// Adds the object `object` as a row, growing the column list as new keys appear.
class RowCollector {
 public:
  explicit RowCollector(Dataset& dataset) : dataset_(dataset) {
    for (size_t i = 0; i < dataset_.columns.size(); ++i) index_[dataset_.columns[i]] = i;
  }
  void add(const json& object, int64_t line) {
    const int32_t file = static_cast<int32_t>(dataset_.files.size()) - 1;
    std::vector<DatasetCell> row(dataset_.columns.size());
    for (const auto& [key, value] : object.items()) {
      auto found = index_.find(key);
      if (found == index_.end()) {
        found = index_.emplace(key, dataset_.columns.size()).first;
        dataset_.columns.push_back(key);
      }
      if (row.size() <= found->second) row.resize(found->second + 1);
      row[found->second] = cell_from_json(value);
    }
    dataset_.rows.push_back(std::move(row));
    dataset_.origins.push_back({file, line});
  }

 private:
  Dataset& dataset_;
  std::unordered_map<std::string, size_t> index_;
};

// 1-based line and column of byte offset `byte` (nlohmann counts the byte after the error).
std::pair<int64_t, int64_t> line_and_column(const std::string& text, size_t byte) {
  int64_t line = 1, column = 1;
  for (size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

}  // namespace

int64_t Dataset::column_index(const std::string& name) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == name) return static_cast<int64_t>(i);
  return -1;
}

const DatasetCell& Dataset::cell(int64_t row, const std::string& column) const {
  static const DatasetCell kAbsent;  // immutable: the shared "no such key" answer
  SMOL_CHECK(row >= 0 && row < size(), source, ": row ", row, " is outside the dataset (", size(),
             " rows)");
  const int64_t c = column_index(column);
  const auto& cells = rows[static_cast<size_t>(row)];
  if (c < 0 || static_cast<size_t>(c) >= cells.size()) return kAbsent;
  return cells[static_cast<size_t>(c)];
}

std::string Dataset::where(int64_t row) const {
  if (row < 0 || row >= static_cast<int64_t>(origins.size()))
    return source + ": row " + std::to_string(row);
  const RowOrigin& origin = origins[static_cast<size_t>(row)];
  std::string text = origin.file >= 0 && static_cast<size_t>(origin.file) < files.size()
                         ? files[static_cast<size_t>(origin.file)]
                         : source;
  if (origin.line > 0) text += ":" + std::to_string(origin.line);
  return text + ": row " + std::to_string(row);
}

Dataset Dataset::select(const std::vector<int64_t>& indices) const {
  Dataset out;
  out.source = source;
  out.columns = columns;
  out.files = files;
  out.rows.reserve(indices.size());
  out.origins.reserve(indices.size());
  for (int64_t i : indices) {
    SMOL_CHECK(i >= 0 && i < size(), source, ": row ", i, " is outside the dataset (", size(),
               " rows)");
    out.rows.push_back(rows[static_cast<size_t>(i)]);
    out.origins.push_back(origins[static_cast<size_t>(i)]);
  }
  return out;
}

Dataset read_jsonl_dataset(const std::string& path) {
  require_regular_file(path, "dataset file");
  std::ifstream in(path, std::ios::binary);
  SMOL_CHECK(in, path, ": cannot open dataset file");
  Dataset dataset;
  dataset.source = path;
  dataset.files = {path};
  RowCollector collector(dataset);
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_number);
    json value;
    try {
      value = parse_bounded_ordered_json(line, where);
    } catch (const json::exception& e) {
      throw_error(path, ":", line_number, ": malformed JSON line: ", short_json_error(e));
    }
    SMOL_CHECK(value.is_object(), path, ":", line_number,
               ": expected a JSON object (one row per line), got ", value.type_name());
    collector.add(value, line_number);
  }
  SMOL_CHECK(!in.bad(), path, ": read error");
  return dataset;
}

Dataset read_json_array_dataset(const std::string& path) {
  const std::string text = read_whole_file(path);
  Dataset dataset;
  dataset.source = path;
  dataset.files = {path};
  RowCollector collector(dataset);
  // The callback turns each element object into a row as soon as it is complete and
  // discards it, so the whole array is never held as a JSON tree.
  int64_t element = 0;
  bool top_is_array = false;
  std::string element_error;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth >= kMaxJsonDepth)
      throw_error(path, ": element ", element, ": JSON nested deeper than ", kMaxJsonDepth,
                  " levels");
    if (depth == 0) {
      if (event == json::parse_event_t::array_start) top_is_array = true;
      return true;
    }
    if (depth != 1 || !top_is_array) return true;
    auto refuse = [&](const std::string& what) {
      if (element_error.empty())
        element_error = "element " + std::to_string(element) + " is " + what + ", not an object";
    };
    switch (event) {
      case json::parse_event_t::object_end:
        collector.add(parsed, 0);
        ++element;
        return false;  // discard: the row is stored, the tree need not grow
      case json::parse_event_t::value:
        refuse(parsed.type_name());
        ++element;
        return false;
      case json::parse_event_t::array_end:
        refuse("array");
        ++element;
        return false;
      default:
        return true;
    }
  };
  json root;
  try {
    root = json::parse(text, callback);
  } catch (const json::parse_error& e) {
    const auto [line, column] = line_and_column(text, e.byte > 0 ? e.byte - 1 : 0);
    throw_error(path, ":", line, ":", column, ": malformed JSON: ", short_json_error(e));
  } catch (const json::exception& e) {
    throw_error(path, ": malformed JSON: ", short_json_error(e));
  }
  SMOL_CHECK(top_is_array, path, ": the file must hold one JSON array of objects, got ",
             root.type_name());
  SMOL_CHECK(element_error.empty(), path, ": ", element_error);
  return dataset;
}

Dataset read_dataset_file(const std::string& path) {
  require_regular_file(path, "dataset file");
  std::ifstream in(path, std::ios::binary);
  SMOL_CHECK(in, path, ": cannot open dataset file");
  char c = 0;
  while (in.get(c))
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
  if (in && c == '[') return read_json_array_dataset(path);
  return read_jsonl_dataset(path);
}

void append_dataset(Dataset& base, const Dataset& more) {
  if (base.columns.empty() && base.rows.empty()) {
    base = more;
    return;
  }
  std::vector<size_t> mapping(more.columns.size());
  for (size_t i = 0; i < more.columns.size(); ++i) {
    int64_t index = base.column_index(more.columns[i]);
    if (index < 0) {
      index = static_cast<int64_t>(base.columns.size());
      base.columns.push_back(more.columns[i]);
    }
    mapping[i] = static_cast<size_t>(index);
  }
  const int32_t file_offset = static_cast<int32_t>(base.files.size());
  base.files.insert(base.files.end(), more.files.begin(), more.files.end());
  for (size_t r = 0; r < more.rows.size(); ++r) {
    std::vector<DatasetCell> row(base.columns.size());
    for (size_t i = 0; i < more.rows[r].size(); ++i) row[mapping[i]] = more.rows[r][i];
    base.rows.push_back(std::move(row));
    RowOrigin origin = more.origins[r];
    origin.file += file_offset;
    base.origins.push_back(origin);
  }
  if (base.source != more.source) base.source += "+" + more.source;
}

}  // namespace smol

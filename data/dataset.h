// Dataset: rows of string fields read from a local JSONL file (one JSON object per line) or a
// JSON file holding one array of objects (MetaMathQA-395K.json), docs/formats.md §6. Values become
// text the way the seed's str() does (docs/seed-behaviour.md §2.3): strings as they are, numbers in
// their shortest round-trip form, booleans True/False, nested values as compact JSON; JSON
// null is kept apart (a row whose target is null is dropped by the renderer). The column list
// is the union of every row's keys in order of first appearance, as HF's JSON loader builds
// its features. Storage is columnar per row (one cell per column), so a 395K-row file costs
// its text plus a few bytes per cell.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace smol {

struct DatasetCell {
  enum class State : uint8_t { Absent, Null, Text };
  State state = State::Absent;  // Absent: the row has no such key
  std::string text;             // valid when state == Text
};

// Where a row came from: files[file], 1-based line (0 when unknown, inside a JSON array).
struct RowOrigin {
  int32_t file = 0;
  int64_t line = 0;
};

struct Dataset {
  std::string source;                          // file path(s), for messages
  std::vector<std::string> columns;            // union of keys, first-appearance order
  std::vector<std::vector<DatasetCell>> rows;  // rows[i][column index]; short rows = Absent
  std::vector<std::string> files;              // every file rows came from
  std::vector<RowOrigin> origins;              // one per row

  int64_t size() const { return static_cast<int64_t>(rows.size()); }
  // Index of a column, or -1.
  int64_t column_index(const std::string& name) const;
  bool has_column(const std::string& name) const { return column_index(name) >= 0; }
  // The cell of row `row` (0-based) for `column`; Absent when the column is unknown.
  const DatasetCell& cell(int64_t row, const std::string& column) const;
  // "<file>:<line>: row <row>" — where a row came from, for messages (row = index here).
  std::string where(int64_t row) const;
  // The rows at `indices` (in that order), sharing the column list.
  Dataset select(const std::vector<int64_t>& indices) const;
};

// One JSON object per non-blank line. A malformed line, or a line that is not an object,
// throws smol::Error naming file:line.
Dataset read_jsonl_dataset(const std::string& path);
// A JSON array of objects. Malformed JSON throws naming file:line:column; an element that is
// not an object throws naming its index and line.
Dataset read_json_array_dataset(const std::string& path);
// Every reader refuses a path that is not a regular file (FIFO, directory, device) before
// opening it, naming the path and what it is.
// By content: a file whose first non-blank character is '[' is a JSON array, otherwise JSONL
// (so a .json file holding JSON lines, as HF's json builder accepts, also works).
Dataset read_dataset_file(const std::string& path);

// Appends `more` (same or different columns) after `base`: the union of columns, as HF's
// concatenation of split slices joined by '+'.
void append_dataset(Dataset& base, const Dataset& more);

}  // namespace smol

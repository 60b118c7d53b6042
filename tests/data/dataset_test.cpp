// Dataset readers (JSONL, JSON array) and dataset resolution: values as text, null vs a
// missing key, the column union, and errors that name file:line.
#include <gtest/gtest.h>

#include "common/error.h"
#include "data/dataset.h"
#include "data/dataset_resolve.h"
#include "data_test_support.h"

namespace smol {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(DatasetReader, JsonlRowsAndValues) {
  const auto dir = test::temp_dir("jsonl");
  const std::string path = test::write_file(
      dir / "rows.jsonl",
      "{\"q\": \"a {x} b\", \"n\": 3, \"f\": 0.5, \"ok\": true, \"none\": null}\r\n"
      "\n"
      "{\"q\": \"second\", \"extra\": [1, 2]}\n");
  const Dataset d = read_jsonl_dataset(path);
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d.columns, (std::vector<std::string>{"q", "n", "f", "ok", "none", "extra"}));
  EXPECT_EQ(d.cell(0, "q").text, "a {x} b");
  EXPECT_EQ(d.cell(0, "n").text, "3");
  EXPECT_EQ(d.cell(0, "f").text, "0.5");
  EXPECT_EQ(d.cell(0, "ok").text, "True");
  EXPECT_EQ(d.cell(0, "none").state, DatasetCell::State::Null);
  EXPECT_EQ(d.cell(1, "n").state, DatasetCell::State::Absent);
  EXPECT_EQ(d.cell(1, "extra").text, "[1,2]");
  EXPECT_EQ(d.where(1), path + ":3: row 1");  // the blank line is skipped, lines still count
}

TEST(DatasetReader, MalformedJsonlLineNamesFileAndLine) {
  const auto dir = test::temp_dir("jsonl_bad");
  const std::string path =
      test::write_file(dir / "bad.jsonl", "{\"q\": \"ok\"}\n{\"q\": \"broken\"\n{\"q\": 1}\n");
  EXPECT_NE(error_of([&] { read_jsonl_dataset(path); }).find(path + ":2: malformed JSON line"),
            std::string::npos);
  const std::string not_object = test::write_file(dir / "array.jsonl", "{\"q\": 1}\n[1, 2]\n");
  EXPECT_NE(error_of([&] { read_jsonl_dataset(not_object); }).find(not_object + ":2: expected"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { read_jsonl_dataset((dir / "missing.jsonl").string()); }).find("cannot open"),
      std::string::npos);
}

TEST(DatasetReader, JsonArray) {
  const auto dir = test::temp_dir("json_array");
  const std::string path =
      test::write_file(dir / "rows.json",
                       "[\n {\"query\": \"Q1\", \"response\": \"R1\", \"type\": \"GSM_AnsAug\"},\n"
                       " {\"query\": \"Q2\", \"response\": null}\n]\n");
  const Dataset d = read_dataset_file(path);  // detected by its leading '['
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d.columns, (std::vector<std::string>{"query", "response", "type"}));
  EXPECT_EQ(d.cell(1, "query").text, "Q2");
  EXPECT_EQ(d.cell(1, "response").state, DatasetCell::State::Null);
  EXPECT_EQ(d.cell(1, "type").state, DatasetCell::State::Absent);

  const std::string broken =
      test::write_file(dir / "broken.json", "[\n {\"query\": \"Q1\"},\n {\"query\" \"Q2\"}\n]\n");
  EXPECT_NE(error_of([&] { read_dataset_file(broken); }).find(broken + ":3:"), std::string::npos);
  const std::string scalar = test::write_file(dir / "scalar.json", "[{\"a\": 1}, 5]");
  EXPECT_NE(error_of([&] { read_json_array_dataset(scalar); }).find("element 1 is number"),
            std::string::npos);
  const std::string object = test::write_file(dir / "object.json", "{\"a\": 1}");
  EXPECT_NE(error_of([&] { read_json_array_dataset(object); }).find("one JSON array"),
            std::string::npos);
}

TEST(DatasetReader, SelectAndAppendKeepOrigins) {
  const auto dir = test::temp_dir("append");
  const std::string a = test::write_file(dir / "a.jsonl", "{\"x\": \"1\"}\n{\"x\": \"2\"}\n");
  const std::string b = test::write_file(dir / "b.jsonl", "{\"y\": \"3\"}\n");
  Dataset d = read_jsonl_dataset(a).select({1});
  append_dataset(d, read_jsonl_dataset(b));
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d.columns, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(d.cell(0, "x").text, "2");
  EXPECT_EQ(d.cell(1, "y").text, "3");
  EXPECT_EQ(d.cell(1, "x").state, DatasetCell::State::Absent);
  EXPECT_EQ(d.where(0), a + ":2: row 0");
  EXPECT_EQ(d.where(1), b + ":1: row 1");
}

TEST(DatasetResolve, KnownNamesLocalFilesAndDirectories) {
  const auto root = test::temp_dir("resolve");
  test::write_file(root / "gsm8k/train.jsonl", "{}\n");
  test::write_file(root / "gsm8k/test.jsonl", "{}\n");
  test::write_file(root / "meta-math/MetaMathQA-395K.json", "[]");
  for (const char* name : {"gsm8k", "openai/gsm8k"}) {
    const DatasetFiles files = resolve_dataset(name, "main", root.string());
    EXPECT_EQ(files.splits.at("train"), (root / "gsm8k/train.jsonl").string());
    EXPECT_EQ(files.splits.at("test"), (root / "gsm8k/test.jsonl").string());
  }
  EXPECT_THROW(resolve_dataset("gsm8k", "socratic", root.string()), Error);
  EXPECT_EQ(resolve_dataset("meta-math/MetaMathQA", "", root.string()).splits.at("train"),
            (root / "meta-math/MetaMathQA-395K.json").string());
  // A local file (as given, or under the data root) is split "train".
  const std::string local = test::write_file(root / "mine/rows.jsonl", "{}\n");
  EXPECT_EQ(resolve_dataset(local).splits.at("train"), local);
  EXPECT_EQ(resolve_dataset("mine/rows.jsonl", "", root.string()).splits.at("train"),
            (root / "mine/rows.jsonl").string());
  // A directory: one split per <split>.jsonl / .json.
  test::write_file(root / "mine/validation.json", "[]");
  const DatasetFiles dir = resolve_dataset((root / "mine").string());
  EXPECT_EQ(dir.splits.size(), 2u);
  EXPECT_TRUE(dir.splits.count("rows") && dir.splits.count("validation"));
  const std::string message = error_of([&] { resolve_dataset("nope/nothing", "", root.string()); });
  EXPECT_NE(message.find("dataset 'nope/nothing'"), std::string::npos) << message;
  // A known name whose files are absent says where it looked.
  const auto empty = test::temp_dir("resolve_empty");
  EXPECT_NE(error_of([&] {
              resolve_dataset("meta-math/MetaMathQA", "", empty.string());
            }).find("MetaMathQA-395K.json"),
            std::string::npos);
}

}  // namespace
}  // namespace smol

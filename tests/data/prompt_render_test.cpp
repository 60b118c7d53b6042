// Field inference, format_map, Python strip and the rendering of the seed's two templates
// (docs/seed-behaviour.md §1 table, §2.2–2.3): GSM8K on the real first train row, MetaMath on a
// record in MetaMathQA's format, with B4 (the target never reaches the prompt).
#include <gtest/gtest.h>

#include "common/error.h"
#include "data/prompt_render.h"
#include "data/python_str.h"
#include "data_test_support.h"

namespace smol {
namespace {

const char* const kGsm8kTemplate =
    "Below is a math problem. Solve it step by step and provide the final answer.\n\n"
    "### Question:\n{question}\n\n### Answer:\n";
const char* const kMetaMathTemplate =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{query}\n\n### Response:\n{response}\n";

Dataset dataset_from(const std::string& name, const std::string& jsonl) {
  return read_jsonl_dataset(test::write_file(test::temp_dir(name) / "rows.jsonl", jsonl));
}

TEST(PromptRender, FieldInference) {
  PromptFormat format;
  // Target: first of response, answer, output, target, completion, text, label.
  Dataset d = dataset_from("infer1", "{\"query\": \"q\", \"type\": \"t\", \"response\": \"r\"}\n");
  ResolvedFields f = resolve_fields(d, format);
  EXPECT_EQ(f.target, "response");
  EXPECT_EQ(f.inputs, (std::vector<std::string>{"query"}));
  // Inputs in candidate order (instruction, input, question, query, ...), not column order.
  d = dataset_from("infer2",
                   "{\"question\": \"q\", \"instruction\": \"i\", \"output\": \"o\", "
                   "\"answer\": \"a\"}\n");
  f = resolve_fields(d, format);
  EXPECT_EQ(f.target, "answer");
  EXPECT_EQ(f.inputs, (std::vector<std::string>{"instruction", "question"}));
  // No candidate input: every non-target column, in column order.
  d = dataset_from("infer3", "{\"b\": \"1\", \"label\": \"2\", \"a\": \"3\"}\n");
  f = resolve_fields(d, format);
  EXPECT_EQ(f.target, "label");
  EXPECT_EQ(f.inputs, (std::vector<std::string>{"b", "a"}));
  // "text" is a target candidate and an input candidate: never both.
  d = dataset_from("infer4", "{\"text\": \"t\", \"prompt\": \"p\"}\n");
  f = resolve_fields(d, format);
  EXPECT_EQ(f.target, "text");
  EXPECT_EQ(f.inputs, (std::vector<std::string>{"prompt"}));
  // Explicit fields win; errors for unknown columns and for a target listed as input.
  format.input_fields = {"prompt"};
  format.target_field = "text";
  EXPECT_EQ(resolve_fields(d, format).inputs, (std::vector<std::string>{"prompt"}));
  format.input_fields = {"prompt", "text"};
  EXPECT_THROW(resolve_fields(d, format), Error);
  format.input_fields = {"nope"};
  EXPECT_THROW(resolve_fields(d, format), Error);
  format.input_fields = {};
  format.target_field = "nope";
  EXPECT_THROW(resolve_fields(d, format), Error);
  EXPECT_THROW(resolve_fields(dataset_from("infer5", "{\"x\": \"1\"}\n"), PromptFormat{}), Error);
}

TEST(PromptRender, FormatMap) {
  const std::map<std::string, std::string> v = {{"a", "A{b}"}, {"b", "B"}};
  EXPECT_EQ(format_map("{a}-{b}-{missing}.", v, "t"), "A{b}-B-.");  // values verbatim
  EXPECT_EQ(format_map("{{a}} }}{{ {a!s}", v, "t"), "{a} }{ A{b}");
  for (const char* bad : {"{", "}", "x}y", "{a", "{}", "{0}", "{a:>5}", "{a!r}", "{a.b}", "{a[0]}"})
    EXPECT_THROW(format_map(bad, v, "t"), Error) << bad;
}

TEST(PromptRender, PythonStrip) {
  EXPECT_EQ(python_strip("  \t\n x y \r\n"), "x y");
  EXPECT_EQ(python_strip("\xC2\xA0\xE3\x80\x80x\xE2\x80\xA8\x1F"), "x");  // NBSP, U+3000, U+2028
  EXPECT_EQ(python_strip("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");  // U+200B is not whitespace
  EXPECT_EQ(python_strip(" \n "), "");
}

TEST(PromptRender, Gsm8kTemplateOnTheFirstTrainRow) {
  if (!std::filesystem::exists(test::gsm8k_train()))
    GTEST_SKIP() << "\n*** SKIPPED: GSM8K not found at " << test::gsm8k_train() << " ***";
  const Dataset d = read_jsonl_dataset(test::gsm8k_train().string());
  ASSERT_EQ(d.size(), 7473);
  PromptFormat format;  // configs/smol/135m_gsm8k.yaml
  format.input_fields = {"question"};
  format.target_field = "answer";
  format.prompt_template = kGsm8kTemplate;
  format.response_template = "{target}\n";
  const auto example = render_example(d, 0, resolve_fields(d, format), format);
  ASSERT_TRUE(example.has_value());
  EXPECT_EQ(example->prompt,
            "Below is a math problem. Solve it step by step and provide the final answer.\n\n"
            "### Question:\nNatalia sold clips to 48 of her friends in April, and then she sold "
            "half as many clips in May. How many clips did Natalia sell altogether in April and "
            "May?\n\n### Answer:");  // stripped: no trailing newline (B5)
  EXPECT_EQ(example->response,
            "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = "
            "<<48+24=72>>72 clips altogether in April and May.\n#### 72");
}

TEST(PromptRender, MetaMathTemplateNeverLeaksTheTarget) {
  // A record in MetaMathQA-395K.json's shape (query, response, type, original_question).
  const Dataset d = dataset_from(
      "metamath",
      R"({"query": "What is $\\frac{1}{2}+\\frac{1}{4}$?", "response": "We have $\\frac{1}{2}+\\frac{1}{4}=\\frac{3}{4}$.\nThe answer is: \\frac{3}{4}", "type": "MATH_AnsAug", "original_question": "What is $\\frac{1}{2}+\\frac{1}{4}$?"})"
      "\n");
  PromptFormat format;  // configs/smol/135m_metamath.yaml: fields inferred
  format.prompt_template = kMetaMathTemplate;
  const ResolvedFields fields = resolve_fields(d, format);
  EXPECT_EQ(fields.target, "response");
  EXPECT_EQ(fields.inputs, (std::vector<std::string>{"query"}));
  const auto example = render_example(d, 0, fields, format);
  ASSERT_TRUE(example.has_value());
  // {response} is not an input: it renders as "" (B4), and the prompt ends at the header.
  EXPECT_EQ(example->prompt,
            "Below is an instruction that describes a task. Write a response that appropriately "
            "completes the request.\n\n### Instruction:\nWhat is $\\frac{1}{2}+\\frac{1}{4}$?"
            "\n\n### Response:");
  EXPECT_EQ(example->prompt.find("The answer is"), std::string::npos);
  // Braces in the value are inserted verbatim.
  EXPECT_EQ(example->response,
            "We have $\\frac{1}{2}+\\frac{1}{4}=\\frac{3}{4}$.\nThe answer is: \\frac{3}{4}");
}

TEST(PromptRender, NoTemplateNullsAndMissingFields) {
  const Dataset d =
      dataset_from("notemplate",
                   "{\"instruction\": \" Do it \", \"input\": \"\", "
                   "\"context\": \"ctx\", \"output\": \" out \"}\n"
                   "{\"instruction\": null, \"input\": \"x\", \"context\": \"c\", "
                   "\"output\": null}\n"
                   "{\"instruction\": \"i\", \"context\": \"c\", \"output\": \"o\"}\n"
                   "{\"instruction\": \"i\", \"input\": \"x\", \"context\": \"c\"}\n");
  PromptFormat format;
  const ResolvedFields fields = resolve_fields(d, format);
  EXPECT_EQ(fields.target, "output");
  auto example = render_example(d, 0, fields, format);
  ASSERT_TRUE(example.has_value());
  // Empty values are skipped; the whole prompt is stripped, not each value.
  EXPECT_EQ(example->prompt, "instruction:  Do it \n\ncontext: ctx");
  EXPECT_EQ(example->response, "out");
  EXPECT_FALSE(render_example(d, 1, fields, format).has_value());  // null target: dropped
  // A row without a needed key names file:line, row and field.
  try {
    render_example(d, 2, fields, format);
    ADD_FAILURE() << "no error for a missing input field";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rows.jsonl:3: row 2: missing field 'input'"),
              std::string::npos)
        << e.what();
  }
  try {
    render_example(d, 3, fields, format);
    ADD_FAILURE() << "no error for a missing target field";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":4: row 3: missing field 'output'"), std::string::npos)
        << e.what();
  }
  // strip_prompt false keeps the template's whitespace; the response is always stripped.
  format.prompt_template = " {instruction}\n";
  format.strip_prompt = false;
  format.response_template = "[{target}] for {instruction} ";
  example = render_example(d, 0, fields, format);
  EXPECT_EQ(example->prompt, "  Do it \n");
  EXPECT_EQ(example->response, "[ out ] for  Do it");
}

}  // namespace
}  // namespace smol

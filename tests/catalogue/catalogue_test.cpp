// The catalogue of bad inputs (docs/bad-inputs.md; docs/design.md §9): one table of cases, each
// a bad model file, config, dataset, batch file, command line or checkpoint given to the real
// `smolengine` binary. Every case must end the way design.md §9 promises:
//   - exit code 1 (not 0, not a signal, not CLI11's 10x codes), within kTimeoutSeconds (a hang
//     fails the case: a FIFO given as a file must not block);
//   - exactly one line starting with "error:", containing the expected text (the file, key,
//     line or limit it names; alternatives separated by '|'), and no longer than
//     kMaxErrorBytes (an untrusted 1 MB value is never echoed whole);
//   - nothing written: the case's directory holds the same paths after the run as before (no
//     *.tmp.*, no half-created run or output directory);
//   - peak RSS (wait4's ru_maxrss) below kMaxRssKib: a few-KB bad file must never size a big
//     allocation. 512 MiB is about 3x what the largest legitimate work in a case costs (reading
//     the 98 MB SmolLM2 GGUF's metadata, or building the tiny model plus a 49152-token
//     vocabulary), and far below what a count or length taken from a bad file would allocate.
// The binary's worst peak RSS and per-case numbers are printed (and written to the file named by
// $SMOL_CATALOGUE_REPORT, when set) for docs/bad-inputs.md.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <set>
#include <vector>

#include "tests/catalogue/catalogue_files.h"

namespace smol::test {
namespace {

constexpr double kTimeoutSeconds = 20;
constexpr long kMaxRssKib = 512 * 1024;
constexpr size_t kMaxErrorBytes = 1024;

enum class Needs { Nothing, Gguf };

struct Invocation {
  Invocation(std::vector<std::string> arguments, std::string input = "")
      : args(std::move(arguments)), stdin_text(std::move(input)) {}
  std::vector<std::string> args;  // after the binary
  std::string stdin_text;         // fed on stdin ("" = /dev/null)
};

struct CatalogueCase {
  std::string name;    // also the row's key in docs/bad-inputs.md
  std::string area;    // model files, configs, datasets, batch files, CLI flags, checkpoints
  std::string input;   // what is wrong, in words (the docs table's first column)
  std::string expect;  // substring(s) of the error line, '|' = alternatives
  Needs needs = Needs::Nothing;
  std::function<Invocation(const fs::path& dir)> setup;
  // Non-empty: the case fails today because of code this catalogue's owner does not own (the
  // file named here); it is skipped, loudly, until that fix lands, and is not counted.
  std::string pending;
};

// gtest (and so ctest's test names) print a case by its name, not its bytes.
void PrintTo(const CatalogueCase& c, std::ostream* os) {
  *os << c.name;
}

// ---- building blocks ---------------------------------------------------------------------

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A tiny model directory at dir/model with one file replaced.
fs::path tiny_model_with(const fs::path& dir, const std::string& file, const std::string& bytes) {
  const fs::path model = dir / "model";
  copy_tiny_model(model);
  write_file(model / file, bytes);
  return model;
}

fs::path tiny_model(const fs::path& dir) {
  copy_tiny_model(dir / "model");
  return dir / "model";
}

SafetensorsParts tiny_weights() {
  return read_safetensors_parts(fs::path(kTinyModelDir) / "model.safetensors");
}

nlohmann::ordered_json tiny_config_json() {
  return nlohmann::ordered_json::parse(slurp(kTinyModelDir + "/config.json"));
}

// `generate` on the cpu with a short prompt unless args say otherwise.
Invocation generate(const fs::path& model, std::vector<std::string> more = {}) {
  return {
      std::vector<std::string>{"generate", "--model", model.string(), "--device", "cpu", "--raw"} +
      more};
}

Invocation inspect(const fs::path& model) {
  return {{"inspect", model.string()}};
}

// configs/tiny_gsm8k.yaml with the byte-level tokenizer (no GGUF, no GSM8K needed) and
// `sets` as --set overrides, for a command (train, dump-step, config, eval).
std::vector<std::string> tiny_sets(const fs::path& dir, const std::vector<std::string>& sets) {
  write_file(dir / "tokenizer.json", byte_level_tokenizer_json().dump());
  std::vector<std::string> args{"--set",
                                "tokenizer.name_or_path=" + (dir / "tokenizer.json").string()};
  for (const std::string& s : sets) args = args + std::vector<std::string>{"--set", s};
  return args;
}

std::string small_dataset_jsonl(int rows) {
  std::string text;
  for (int i = 0; i < rows; ++i)
    text += "{\"question\": \"What is " + std::to_string(i) + " + 1?\", \"answer\": \"It is " +
            std::to_string(i + 1) + ".\\n#### " + std::to_string(i + 1) + "\"}\n";
  return text;
}

// `train` on the tiny config reading `data` as its train split, into dir/run.
Invocation train_on(const fs::path& dir, const fs::path& data, std::vector<std::string> sets = {}) {
  sets.push_back("dataset.data_files=" + data.string());
  sets.push_back("dataset.eval_split=train[:4]");
  return {std::vector<std::string>{"train", kTinyConfig, "--device", "cpu", "--output-dir",
                                   (dir / "run").string()} +
          tiny_sets(dir, sets)};
}

// `eval --split train` of the freshly built tiny model reading `data` as its train split: the
// dataset reader's errors without `train`'s run directory (see train_bad_dataset_run_dir).
Invocation eval_on(const fs::path& dir, const fs::path& data, std::vector<std::string> sets = {}) {
  sets.push_back("dataset.data_files=" + data.string());
  return {std::vector<std::string>{"eval", kTinyConfig, "--device", "cpu", "--split", "train"} +
          tiny_sets(dir, sets)};
}

Invocation eval_on_text(const fs::path& dir, const std::string& file, const std::string& text,
                        std::vector<std::string> sets = {}) {
  write_file(dir / file, text);
  return eval_on(dir, dir / file, std::move(sets));
}

// `dump-step` on the tiny config with `rows` as the batch file.
Invocation dump_step(const fs::path& dir, const fs::path& batch,
                     std::vector<std::string> sets = {}) {
  return {std::vector<std::string>{"dump-step", kTinyConfig, "--device", "cpu", "--batch",
                                   batch.string(), "--out", (dir / "step.safetensors").string()} +
          tiny_sets(dir, sets)};
}

Invocation dump_step_rows(const fs::path& dir, const std::string& rows) {
  write_file(dir / "batch.jsonl", rows);
  return dump_step(dir, dir / "batch.jsonl");
}

// `config CONFIG` on a YAML text, with --set overrides.
Invocation config_yaml(const fs::path& dir, const std::string& yaml,
                       const std::vector<std::string>& sets = {}) {
  write_file(dir / "run.yaml", yaml);
  std::vector<std::string> args{"config", (dir / "run.yaml").string()};
  for (const std::string& s : sets) args = args + std::vector<std::string>{"--set", s};
  return {args};
}

// configs/tiny_gsm8k.yaml with one line appended or replaced.
std::string tiny_yaml_with(const std::string& from, const std::string& to) {
  std::string yaml = slurp(kTinyConfig);
  if (from.empty()) return yaml + to;
  const size_t at = yaml.find(from);
  if (at == std::string::npos) return yaml + "\n# catalogue: '" + from + "' not found\n";
  return yaml.replace(at, from.size(), to);
}

// A GGUF made of the real file's first 64 KiB (header + most of the metadata), patched.
std::string gguf_head() {
  return head_of(kGgufFile, 64 * 1024);
}

// A checkpoint of a 2-step tiny run, made once per process (run dir copied per case).
const fs::path& trained_run() {
  static std::once_flag once;
  static fs::path run;
  std::call_once(once, [] {
    const fs::path dir =
        fs::temp_directory_path() / ("smol_catalogue_run_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    write_file(dir / "data.jsonl", small_dataset_jsonl(16));
    Invocation inv = train_on(dir, dir / "data.jsonl",
                              {"training.max_steps=2", "training.save_steps=2",
                               "training.eval_strategy=no", "evaluation.generative=false"});
    std::vector<std::string> argv{kBinary};
    argv = argv + inv.args;
    const ChildResult r = run_child(argv, dir.string(), "", (dir / "train").string(), 120);
    if (r.exit_code != 0) ADD_FAILURE() << "the checkpoint fixture run failed:\n" << r.out << r.err;
    run = dir;
  });
  return run;
}

// The fixture run copied to dir/run, returning dir/run/checkpoint-2.
fs::path copied_checkpoint(const fs::path& dir) {
  fs::copy(trained_run() / "run", dir / "run", fs::copy_options::recursive);
  return dir / "run" / "checkpoint-2";
}

Invocation resume(const fs::path& dir, const fs::path& checkpoint) {
  Invocation inv = train_on(
      dir, trained_run() / "data.jsonl",
      {"training.max_steps=4", "training.eval_strategy=no", "evaluation.generative=false"});
  inv.args = inv.args + std::vector<std::string>{"--resume", checkpoint.string()};
  return inv;
}

// ---- the table ----------------------------------------------------------------------------

std::vector<CatalogueCase> catalogue() {
  std::vector<CatalogueCase> c;
  auto add = [&](std::string name, std::string area, std::string input, std::string expect,
                 std::function<Invocation(const fs::path&)> setup, Needs needs = Needs::Nothing) {
    c.push_back({std::move(name), std::move(area), std::move(input), std::move(expect), needs,
                 std::move(setup), ""});
  };
  // A case that waits for a fix in a file someone else owns (see CatalogueCase::pending).
  auto pending = [&](const std::string& where) { c.back().pending = where; };

  // -- model files: safetensors ---------------------------------------------------------------
  const std::string st = "model files";
  add("safetensors_empty", st, "model.safetensors is empty", "model.safetensors",
      [](const fs::path& d) { return inspect(tiny_model_with(d, "model.safetensors", "")); });
  add("safetensors_short_header", st, "model.safetensors is 5 bytes long", "model.safetensors",
      [](const fs::path& d) {
        return inspect(tiny_model_with(d, "model.safetensors", std::string("\x08\0\0\0\0", 5)));
      });
  add("safetensors_huge_header_size", st, "header size field says 2^62 bytes", "model.safetensors",
      [](const fs::path& d) {
        std::string bytes = safetensors_bytes(tiny_weights());
        put_u64(bytes, 0, uint64_t{1} << 62);
        return inspect(tiny_model_with(d, "model.safetensors", bytes));
      });
  add("safetensors_header_not_json", st, "header is not JSON", "model.safetensors",
      [](const fs::path& d) {
        return inspect(tiny_model_with(d, "model.safetensors",
                                       safetensors_bytes("{not json", tiny_weights().data)));
      });
  add("safetensors_header_cut", st, "file cut inside the header", "model.safetensors",
      [](const fs::path& d) {
        return inspect(tiny_model_with(d, "model.safetensors",
                                       safetensors_bytes(tiny_weights()).substr(0, 500)));
      });
  add("safetensors_data_cut", st, "file cut inside the tensor data", "model.safetensors",
      [](const fs::path& d) {
        const std::string bytes = safetensors_bytes(tiny_weights());
        return inspect(
            tiny_model_with(d, "model.safetensors", bytes.substr(0, bytes.size() - 1000)));
      });
  add("safetensors_bad_dtype", st, "a tensor's dtype is \"Q9\"", "Q9", [](const fs::path& d) {
    SafetensorsParts w = tiny_weights();
    w.header["model.norm.weight"]["dtype"] = "Q9";
    return inspect(tiny_model_with(d, "model.safetensors", safetensors_bytes(w)));
  });
  add("safetensors_overlapping_offsets", st, "two tensors share bytes", "model.safetensors",
      [](const fs::path& d) {
        SafetensorsParts w = tiny_weights();
        w.header["model.norm.weight"]["data_offsets"] = {323584 - 128, 323840 - 128};
        return inspect(tiny_model_with(d, "model.safetensors", safetensors_bytes(w)));
      });
  add("safetensors_offsets_past_end", st, "data_offsets point past the end of the file",
      "model.safetensors", [](const fs::path& d) {
        SafetensorsParts w = tiny_weights();
        w.header["model.norm.weight"]["data_offsets"] = {uint64_t{1} << 40,
                                                         (uint64_t{1} << 40) + 256};
        return inspect(tiny_model_with(d, "model.safetensors", safetensors_bytes(w)));
      });
  add("safetensors_shape_vs_bytes", st, "shape [1000000, 1000000] for 256 bytes",
      "model.norm.weight", [](const fs::path& d) {
        SafetensorsParts w = tiny_weights();
        w.header["model.norm.weight"]["shape"] = {1000000, 1000000};
        return inspect(tiny_model_with(d, "model.safetensors", safetensors_bytes(w)));
      });
  add("safetensors_missing_tensor", st, "model.norm.weight is absent", "model.norm.weight",
      [](const fs::path& d) {
        SafetensorsParts w = tiny_weights();
        w.header.erase("model.norm.weight");  // the last tensor: its bytes go too
        w.data.resize(323584);
        return generate(tiny_model_with(d, "model.safetensors", safetensors_bytes(w)),
                        {"--prompt", "hi"});
      });
  add("safetensors_wrong_shape_for_config", st, "embedding [300, 64] stored as [64, 300]",
      "model.embed_tokens.weight", [](const fs::path& d) {
        SafetensorsParts w = tiny_weights();
        w.header["model.embed_tokens.weight"]["shape"] = {64, 300};
        return generate(tiny_model_with(d, "model.safetensors", safetensors_bytes(w)),
                        {"--prompt", "hi"});
      });
  add("safetensors_nan_weights", st, "model.norm.weight holds NaN",
      "model.norm.weight|not finite|non-finite", [](const fs::path& d) {
        SafetensorsParts w = tiny_weights();
        const float nan = std::numeric_limits<float>::quiet_NaN();
        for (size_t i = 323584; i < 323840; i += 4) std::memcpy(&w.data[i], &nan, 4);
        return generate(tiny_model_with(d, "model.safetensors", safetensors_bytes(w)),
                        {"--prompt", "hello"});
      });
  add("safetensors_is_directory", st, "model.safetensors is a directory", "model.safetensors",
      [](const fs::path& d) {
        const fs::path m = tiny_model(d);
        fs::remove(m / "model.safetensors");
        fs::create_directories(m / "model.safetensors");
        return inspect(m);
      });

  // -- model files: config.json -------------------------------------------------------------------
  auto config_with = [](std::function<void(nlohmann::ordered_json&)> edit) {
    return [edit](const fs::path& d) {
      nlohmann::ordered_json cfg = tiny_config_json();
      edit(cfg);
      return inspect(tiny_model_with(d, "config.json", cfg.dump()));
    };
  };
  add("config_json_not_json", st, "config.json is not JSON", "config.json", [](const fs::path& d) {
    return inspect(tiny_model_with(d, "config.json", "{\"hidden_size\": "));
  });
  add("config_json_empty", st, "config.json is empty", "config.json",
      [](const fs::path& d) { return inspect(tiny_model_with(d, "config.json", "")); });
  add("config_json_missing_key", st, "config.json has no hidden_size", "hidden_size",
      config_with([](nlohmann::ordered_json& j) { j.erase("hidden_size"); }));
  add("config_json_wrong_type", st, "hidden_size is the string \"64\"", "hidden_size",
      config_with([](nlohmann::ordered_json& j) { j["hidden_size"] = "64"; }));
  add("config_json_negative", st, "num_hidden_layers is -2", "num_hidden_layers",
      config_with([](nlohmann::ordered_json& j) { j["num_hidden_layers"] = -2; }));
  add("config_json_huge_vocab", st, "vocab_size is 10^12", "vocab_size",
      config_with([](nlohmann::ordered_json& j) { j["vocab_size"] = 1000000000000LL; }));
  add("config_json_heads_mismatch", st, "num_attention_heads 5 with hidden_size 64, head_dim 16",
      "num_attention_heads|head_dim",
      config_with([](nlohmann::ordered_json& j) { j["num_attention_heads"] = 5; }));
  add("config_json_huge_unsigned", st, "max_position_embeddings is 2^64-1",
      "max_position_embeddings", config_with([](nlohmann::ordered_json& j) {
        j["max_position_embeddings"] = std::numeric_limits<uint64_t>::max();
      }));

  // -- model files: tokenizer.json
  // ------------------------------------------------------------------
  const std::string tk = "model files";
  auto tokenize_with = [](std::function<void(nlohmann::ordered_json&)> edit) {
    return [edit](const fs::path& d) {
      nlohmann::ordered_json tok = byte_level_tokenizer_json();
      edit(tok);
      write_file(d / "tokenizer.json", tok.dump());
      return Invocation{{"tokenize", "--model", (d / "tokenizer.json").string(), "--jsonl"},
                        "\"hello\"\n"};
    };
  };
  add("tokenizer_json_not_json", tk, "tokenizer.json is cut in the middle", "tokenizer.json",
      [](const fs::path& d) {
        write_file(d / "tokenizer.json", byte_level_tokenizer_json().dump().substr(0, 300));
        return Invocation{{"tokenize", "--model", (d / "tokenizer.json").string(), "--jsonl"},
                          "\"hello\"\n"};
      });
  add("tokenizer_json_model_not_object", tk, "model is a string", "model",
      tokenize_with([](nlohmann::ordered_json& t) { t["model"] = "BPE"; }));
  add("tokenizer_json_vocab_id_huge", tk, "a vocab id is 99999999999", "vocab",
      tokenize_with([](nlohmann::ordered_json& t) { t["model"]["vocab"]["a"] = 99999999999LL; }));
  add("tokenizer_json_merges_not_array", tk, "merges is a number", "merges",
      tokenize_with([](nlohmann::ordered_json& t) { t["model"]["merges"] = 7; }));
  add("tokenizer_json_added_token_id_huge", tk, "an added token's id is 2^40", "added_tokens",
      tokenize_with(
          [](nlohmann::ordered_json& t) { t["added_tokens"][0]["id"] = int64_t{1} << 40; }));
  add("tokenizer_json_model_type_number", tk, "model.type is 5", "tokenizer.json",
      tokenize_with([](nlohmann::ordered_json& t) { t["model"]["type"] = 5; }));

  // -- model files: GGUF (the real file's first 64 KiB, patched) -------------------------------
  const std::string gg = "model files";
  auto gguf_case = [](std::function<void(std::string&)> edit) {
    return [edit](const fs::path& d) {
      std::string bytes = gguf_head();
      edit(bytes);
      write_file(d / "model.gguf", bytes);
      return inspect(d / "model.gguf");
    };
  };
  add("gguf_empty", gg, "an empty .gguf", "model.gguf", [](const fs::path& d) {
    write_file(d / "model.gguf", "");
    return inspect(d / "model.gguf");
  });
  add("gguf_wrong_magic", gg, "magic GGUX", "model.gguf",
      gguf_case([](std::string& b) { b[3] = 'X'; }), Needs::Gguf);
  add("gguf_bad_version", gg, "version 99", "model.gguf",
      gguf_case([](std::string& b) { put_u32(b, 4, 99); }), Needs::Gguf);
  add("gguf_truncated", gg, "the file cut after 64 KiB", "model.gguf",
      gguf_case([](std::string&) {}), Needs::Gguf);
  add("gguf_huge_tensor_count", gg, "tensor count 2^60", "model.gguf",
      gguf_case([](std::string& b) { put_u64(b, 8, uint64_t{1} << 60); }), Needs::Gguf);
  add("gguf_huge_kv_count", gg, "metadata count 2^60", "model.gguf",
      gguf_case([](std::string& b) { put_u64(b, 16, uint64_t{1} << 60); }), Needs::Gguf);
  add("gguf_huge_key_length", gg, "first key's length 2^62", "model.gguf",
      gguf_case([](std::string& b) { put_u64(b, 24, uint64_t{1} << 62); }), Needs::Gguf);
  add(
      "gguf_generate_truncated", gg, "generate from a GGUF cut after 64 KiB", "model.gguf",
      [](const fs::path& d) {
        write_file(d / "model.gguf", gguf_head());
        return generate(d / "model.gguf", {"--prompt", "hi"});
      },
      Needs::Gguf);

  // -- configs ----------------------------------------------------------------------------------
  const std::string cf = "configs";
  add("yaml_syntax_error", cf, "a YAML syntax error on line 3", "run.yaml|line 3",
      [](const fs::path& d) {
        return config_yaml(d, "task_name: gsm8k\ntraining:\n  max_steps: [1, 2\n");
      });
  add("yaml_unknown_key", cf, "training.max_stepz", "max_stepz", [](const fs::path& d) {
    return config_yaml(d, tiny_yaml_with("  max_steps: 20", "  max_stepz: 20"));
  });
  add("yaml_wrong_type", cf, "training.max_steps: abc", "max_steps", [](const fs::path& d) {
    return config_yaml(d, tiny_yaml_with("  max_steps: 20", "  max_steps: abc"));
  });
  add("yaml_bad_enum", cf, "lr_scheduler_type: sawtooth", "lr_scheduler_type",
      [](const fs::path& d) {
        return config_yaml(
            d, tiny_yaml_with("lr_scheduler_type: cosine", "lr_scheduler_type: sawtooth"));
      });
  add("yaml_out_of_range", cf, "peft.lora_r: 0", "lora_r",
      [](const fs::path& d) { return config_yaml(d, tiny_yaml_with("lora_r: 4", "lora_r: 0")); });
  add("yaml_huge_integer", cf, "training.max_steps: 99999999999999999999", "max_steps",
      [](const fs::path& d) {
        return config_yaml(d,
                           tiny_yaml_with("  max_steps: 20", "  max_steps: 99999999999999999999"));
      });
  add("yaml_negative_batch", cf, "per_device_train_batch_size: -4", "per_device_train_batch_size",
      [](const fs::path& d) {
        return config_yaml(
            d, tiny_yaml_with("per_device_train_batch_size: 4", "per_device_train_batch_size: -4"));
      });
  add("yaml_top_level_list", cf, "the file is a YAML list", "run.yaml",
      [](const fs::path& d) { return config_yaml(d, "- a\n- b\n"); });
  add("yaml_missing_file", cf, "the config file does not exist", "no-such.yaml",
      [](const fs::path& d) {
        return Invocation{{"config", (d / "no-such.yaml").string()}};
      });
  add("yaml_is_directory", cf, "the config path is a directory", "conf.d", [](const fs::path& d) {
    fs::create_directories(d / "conf.d");
    return Invocation{{"config", (d / "conf.d").string()}};
  });
  add("set_no_equals", cf, "--set training.max_steps", "training.max_steps", [](const fs::path&) {
    return Invocation{{"config", kTinyConfig, "--set", "training.max_steps"}};
  });
  add("set_unknown_key", cf, "--set training.nope=1", "training.nope", [](const fs::path&) {
    return Invocation{{"config", kTinyConfig, "--set", "training.nope=1"}};
  });
  add("set_wrong_type", cf, "--set training.max_steps=abc", "training.max_steps",
      [](const fs::path&) {
        return Invocation{{"config", kTinyConfig, "--set", "training.max_steps=abc"}};
      });
  add("set_bad_yaml", cf, "--set training.learning_rate=[1", "training.learning_rate",
      [](const fs::path&) {
        return Invocation{{"config", kTinyConfig, "--set", "training.learning_rate=[1"}};
      });

  // -- datasets (eval --split train on the tiny config, dataset.data_files = the bad file) -------
  const std::string ds = "datasets";
  add("dataset_bad_json_line", ds, "line 3 is not JSON", "data.jsonl:3", [](const fs::path& d) {
    return eval_on_text(d, "data.jsonl", small_dataset_jsonl(2) + "{\"question\": oops}\n");
  });
  add("dataset_missing_field", ds, "no row has the target field \"answer\"", "answer",
      [](const fs::path& d) {
        return eval_on_text(d, "data.jsonl", "{\"question\": \"q\", \"reply\": \"a\"}\n");
      });
  add("dataset_line_not_object", ds, "line 2 is an array", "data.jsonl:2", [](const fs::path& d) {
    return eval_on_text(d, "data.jsonl", small_dataset_jsonl(1) + "[1, 2]\n");
  });
  add("dataset_empty_file", ds, "the train file is empty",
      "data.jsonl: the dataset file holds no rows",
      [](const fs::path& d) { return eval_on_text(d, "data.jsonl", ""); });
  add("dataset_missing_file", ds, "the train file does not exist", "missing.jsonl",
      [](const fs::path& d) { return eval_on(d, d / "missing.jsonl"); });
  add("dataset_directory", ds, "the train file is a directory", "data.d", [](const fs::path& d) {
    fs::create_directories(d / "data.d");
    return eval_on(d, d / "data.d");
  });
  add("dataset_fifo", ds, "the train file is a FIFO (nobody writes to it)", "FIFO",
      [](const fs::path& d) {
        ::mkfifo((d / "data.fifo").c_str(), 0644);
        return eval_on(d, d / "data.fifo");
      });
  add("dataset_json_array_cut", ds, "a JSON array cut in the middle", "data.json:1",
      [](const fs::path& d) {
        return eval_on_text(d, "data.json", "[{\"question\": \"q\", \"answer\": \"a\"}, {\"quest");
      });
  add("dataset_json_array_element", ds, "element 1 of the array is a number", "element 1",
      [](const fs::path& d) {
        return eval_on_text(d, "data.json", "[{\"question\": \"q\", \"answer\": \"a\"}, 5]");
      });
  add("dataset_huge_field_echo", ds, "a bad line holding a 1 MB string", "data.jsonl:1",
      [](const fs::path& d) {
        return eval_on_text(d, "data.jsonl",
                            "{\"question\": \"" + std::string(1 << 20, 'x') + "\" oops}\n");
      });
  add("dataset_deep_nesting", ds, "a valid line nesting 200000 arrays (crashed: stack overflow)",
      "data.jsonl:1: JSON nested deeper than", [](const fs::path& d) {
        const std::string deep = std::string(200000, '[') + std::string(200000, ']');
        return eval_on_text(d, "data.jsonl", "{\"question\": " + deep + ", \"answer\": \"a\"}\n");
      });
  add("dataset_json_array_deep_nesting", ds, "a JSON array whose element nests 200000 objects",
      "data.json: element 0: JSON nested deeper than", [](const fs::path& d) {
        std::string deep;
        for (int i = 0; i < 200000; ++i) deep += "{\"a\":";
        deep += "1" + std::string(200000, '}');
        return eval_on_text(d, "data.json", "[" + deep + "]");
      });
  add("eval_prompt_longer_than_context", ds,
      "eval of a 600-token prompt (context 512): truncated for teacher forcing, too long to "
      "generate from",
      "data.jsonl:1: row 0: the prompt is", [](const fs::path& d) {
        return eval_on_text(
            d, "data.jsonl",
            "{\"question\": \"" + std::string(600, 'q') + "\", \"answer\": \"#### 1\"}\n",
            {"model.architecture.vocab_size=300"});  // = the test tokenizer's
      });
  add("dataset_row_longer_than_context", ds,
      "a 2000-token row with dataset.max_length 100000 (context 512)",
      "max_position_embeddings 512", [](const fs::path& d) {
        return eval_on_text(
            d, "data.jsonl",
            "{\"question\": \"" + std::string(2000, 'q') + "\", \"answer\": \"a\"}\n",
            {"dataset.max_length=100000"});
      });

  add("train_bad_dataset_run_dir", ds, "train on a dataset with a bad line 2", "data.jsonl:2",
      [](const fs::path& d) {
        write_file(d / "data.jsonl", small_dataset_jsonl(1) + "[1, 2]\n");
        return train_on(d, d / "data.jsonl");
      });
  // -- batch files (dump-step --batch) ------------------------------------------------------------
  const std::string bt = "batch files";
  add("batch_huge_label", bt, "a label of 18446744073709551516 (wraps to -100 as int64)",
      "batch.jsonl:1: label 18446744073709551516 (labels[1])", [](const fs::path& d) {
        return dump_step_rows(
            d, "{\"input_ids\": [1, 2], \"labels\": [-100, 18446744073709551516]}\n");
      });
  add("batch_huge_id", bt, "an input id of 4294967295 (wraps to -1 as int32)",
      "batch.jsonl:1: input id 4294967295 (input_ids[0])", [](const fs::path& d) {
        return dump_step_rows(d, "{\"input_ids\": [4294967295, 2], \"labels\": [1, 2]}\n");
      });
  add("batch_id_past_vocab", bt, "an input id equal to the vocabulary size",
      "input id 49152 (input_ids[1])", [](const fs::path& d) {
        return dump_step_rows(d, "{\"input_ids\": [1, 49152], \"labels\": [1, 2]}\n");
      });
  add("batch_negative_label", bt, "a label of -1", "label -1 (labels[0])", [](const fs::path& d) {
    return dump_step_rows(d, "{\"input_ids\": [1, 2], \"labels\": [-1, 2]}\n");
  });
  add("batch_float_id", bt, "an input id of 1.5", "input id 1.5 (input_ids[0])",
      [](const fs::path& d) {
        return dump_step_rows(d, "{\"input_ids\": [1.5, 2], \"labels\": [1, 2]}\n");
      });
  add("batch_length_mismatch", bt, "2 input ids, 3 labels", "batch.jsonl:2", [](const fs::path& d) {
    return dump_step_rows(
        d,
        "{\"input_ids\": [1], \"labels\": [1]}\n{\"input_ids\": [1, 2], \"labels\": [1, 2, 3]}\n");
  });
  add("batch_unknown_field", bt, "a field \"mask\"", "\"mask\"", [](const fs::path& d) {
    return dump_step_rows(d, "{\"input_ids\": [1], \"labels\": [1], \"mask\": [1]}\n");
  });
  add("batch_huge_key_echo", bt, "an unknown field whose name is 1 MB",
      "batch.jsonl:1: unknown field", [](const fs::path& d) {
        return dump_step_rows(
            d, "{\"input_ids\": [1], \"labels\": [1], \"" + std::string(1 << 20, 'k') + "\": 1}\n");
      });
  add("batch_ids_not_array", bt, "input_ids is a string", "\"input_ids\" must be an array",
      [](const fs::path& d) {
        return dump_step_rows(d, "{\"input_ids\": \"1 2\", \"labels\": [1, 2]}\n");
      });
  add("batch_row_longer_than_context", bt, "a 600-token row (context 512)",
      "max_position_embeddings 512", [](const fs::path& d) {
        std::string ids = "[1";
        for (int i = 1; i < 600; ++i) ids += ", 1";
        ids += "]";
        return dump_step_rows(d, "{\"input_ids\": " + ids + ", \"labels\": " + ids + "}\n");
      });
  add("batch_deep_nesting", bt, "labels nesting 200000 arrays",
      "batch.jsonl:1: JSON nested deeper than", [](const fs::path& d) {
        return dump_step_rows(d, "{\"input_ids\": [1], \"labels\": " + std::string(200000, '[') +
                                     std::string(200000, ']') + "}\n");
      });
  add("tokenize_deep_nesting", bt, "tokenize --decode of 200000 nested arrays",
      "stdin:1: JSON nested deeper than", [](const fs::path& d) {
        write_file(d / "tokenizer.json", byte_level_tokenizer_json().dump());
        return Invocation{
            {"tokenize", "--model", (d / "tokenizer.json").string(), "--jsonl", "--decode"},
            std::string(200000, '[') + std::string(200000, ']') + "\n"};
      });
  add("batch_empty", bt, "an empty batch file", "has no rows",
      [](const fs::path& d) { return dump_step_rows(d, "\n"); });
  add("batch_fifo", bt, "the batch file is a FIFO", "not a regular file", [](const fs::path& d) {
    ::mkfifo((d / "batch.fifo").c_str(), 0644);
    return dump_step(d, d / "batch.fifo");
  });
  add("tokenize_decode_huge_id", bt, "tokenize --decode of id 18446744073709551615", "stdin:1",
      [](const fs::path& d) {
        write_file(d / "tokenizer.json", byte_level_tokenizer_json().dump());
        return Invocation{
            {"tokenize", "--model", (d / "tokenizer.json").string(), "--jsonl", "--decode"},
            "[18446744073709551615]\n"};
      });

  // -- CLI flags ----------------------------------------------------------------------------------
  const std::string cl = "CLI flags";
  add("unknown_command", cl, "smolengine frobnicate", "unknown command \"frobnicate\"",
      [](const fs::path&) { return Invocation{{"frobnicate"}}; });
  add("no_command", cl, "smolengine with no command", "subcommand|command",
      [](const fs::path&) { return Invocation{{}}; });
  add("unknown_flag", cl, "generate --frobnicate", "--frobnicate", [](const fs::path& d) {
    return generate(tiny_model(d), {"--prompt", "hi", "--frobnicate"});
  });
  add("missing_required_flag", cl, "generate without --prompt", "--prompt",
      [](const fs::path& d) { return generate(tiny_model(d)); });
  add("max_new_tokens_negative", cl, "--max-new-tokens -1", "--max-new-tokens",
      [](const fs::path& d) {
        return generate(tiny_model(d), {"--prompt", "hi", "--max-new-tokens", "-1"});
      });
  add("max_new_tokens_wraps_int32", cl, "--max-new-tokens 4294967297", "--max-new-tokens",
      [](const fs::path& d) {
        return generate(tiny_model(d), {"--prompt", "hi", "--max-new-tokens", "4294967297"});
      });
  add("max_new_tokens_past_context", cl, "--max-new-tokens 100000 (context 128)",
      "max_position_embeddings 128", [](const fs::path& d) {
        return generate(tiny_model(d), {"--prompt", "hi", "--max-new-tokens", "100000"});
      });
  add("prompt_longer_than_context", cl, "a 9000-token prompt (context 128)", "context",
      [](const fs::path& d) {
        return generate(tiny_model(d), {"--prompt", std::string(9000, 'a')});
      });
  add("seed_negative", cl, "--seed -1 (wraps to 2^64-1 in CLI11)", "--seed", [](const fs::path& d) {
    return generate(tiny_model(d), {"--prompt", "hi", "--seed", "-1"});
  });
  add("top_p_nan", cl, "--top-p nan", "top_p", [](const fs::path& d) {
    return generate(tiny_model(d), {"--prompt", "hi", "--top-p", "nan"});
  });
  add("temperature_negative", cl, "--temperature -1", "temperature", [](const fs::path& d) {
    return generate(tiny_model(d), {"--prompt", "hi", "--temperature", "-1"});
  });
  add("max_new_tokens_hex", cl, "--max-new-tokens 0x10 (CLI11 alone reads hex 16)",
      "--max-new-tokens", [](const fs::path& d) {
        return generate(tiny_model(d), {"--prompt", "hi", "--max-new-tokens", "0x10"});
      });
  add("generate_missing_model", cl, "--model of a missing file", "no-such-model.gguf",
      [](const fs::path& d) {
        return generate(d / "no-such-model.gguf", {"--prompt", "hi"});
      });
  add("eval_samples_negative", cl, "eval --samples -5", "--samples", [](const fs::path&) {
    return Invocation{{"eval", kTinyConfig, "--samples", "-5"}};
  });
  add("eval_max_new_tokens_huge", cl, "eval --max-new-tokens 99999999999", "--max-new-tokens",
      [](const fs::path&) {
        return Invocation{{"eval", kTinyConfig, "--max-new-tokens", "99999999999"}};
      });
  add("export_bad_dtype", cl, "export --dtype f8", "--dtype \"f8\"", [](const fs::path& d) {
    fs::create_directories(d / "ckpt");
    return Invocation{
        {"export", (d / "ckpt").string(), "--out", (d / "out").string(), "--dtype", "f8"}};
  });
  add("train_missing_config", cl, "train of a missing config", "missing.yaml",
      [](const fs::path& d) {
        return Invocation{{"train", (d / "missing.yaml").string()}};
      });
  add("device_unknown", cl, "--device tpu", "tpu", [](const fs::path& d) {
    return Invocation{
        {"generate", "--model", tiny_model(d).string(), "--prompt", "hi", "--device", "tpu"}};
  });

  // -- checkpoints (a 2-step tiny run, copied and corrupted)
  // ---------------------------------------
  const std::string ck = "checkpoints";
  add("resume_missing_dir", ck, "--resume of a directory that does not exist", "checkpoint-99",
      [](const fs::path& d) { return resume(d, d / "run" / "checkpoint-99"); });
  add("resume_corrupt_trainer_state", ck, "trainer_state.json is not JSON", "trainer_state.json",
      [](const fs::path& d) {
        const fs::path ckpt = copied_checkpoint(d);
        write_file(ckpt / "trainer_state.json", "{\"global_step\": ");
        return resume(d, ckpt);
      });
  add("eval_checkpoint_missing", ck, "eval --checkpoint of a directory that does not exist",
      "checkpoint-99", [](const fs::path& d) {
        Invocation inv = eval_on(d, trained_run() / "data.jsonl");
        inv.args =
            inv.args + std::vector<std::string>{"--checkpoint", (d / "checkpoint-99").string()};
        return inv;
      });
  add("resume_truncated_training_state", ck, "training_state.safetensors cut in half",
      "training_state.safetensors", [](const fs::path& d) {
        const fs::path ckpt = copied_checkpoint(d);
        const std::string bytes = slurp((ckpt / "training_state.safetensors").string());
        write_file(ckpt / "training_state.safetensors", bytes.substr(0, bytes.size() / 2));
        return resume(d, ckpt);
      });
  add("export_truncated_adapter", ck,
      "export of a checkpoint whose adapter_model.safetensors is cut in half",
      "adapter_model.safetensors", [](const fs::path& d) {
        const fs::path ckpt = copied_checkpoint(d);
        const std::string bytes = slurp((ckpt / "adapter_model.safetensors").string());
        write_file(ckpt / "adapter_model.safetensors", bytes.substr(0, bytes.size() / 2));
        return Invocation{{"export", ckpt.string(), "--out", (d / "exported").string()}};
      });
  add("export_adapter_config_not_json", ck,
      "export of a checkpoint whose adapter_config.json is not JSON", "adapter_config.json",
      [](const fs::path& d) {
        const fs::path ckpt = copied_checkpoint(d);
        write_file(ckpt / "adapter_config.json", "{\"r\": ");
        return Invocation{{"export", ckpt.string(), "--out", (d / "exported").string()}};
      });
  add("eval_nan_checkpoint", ck, "eval of a checkpoint whose trained LoRA tensors hold NaN",
      "not finite|non-finite|NaN", [](const fs::path& d) {
        const fs::path ckpt = copied_checkpoint(d);
        SafetensorsParts state = read_safetensors_parts(ckpt / "training_state.safetensors");
        const float nan = std::numeric_limits<float>::quiet_NaN();
        for (const auto& [name, info] : state.header.items()) {
          if (name.rfind("param.", 0) != 0) continue;
          const size_t begin = info["data_offsets"][0], end = info["data_offsets"][1];
          for (size_t i = begin; i + 4 <= end; i += 4) std::memcpy(&state.data[i], &nan, 4);
        }
        write_file(ckpt / "training_state.safetensors", safetensors_bytes(state));
        Invocation inv = eval_on(d, trained_run() / "data.jsonl", {"evaluation.generative=false"});
        inv.args = inv.args + std::vector<std::string>{"--checkpoint", ckpt.string()};
        return inv;
      });
  add("dump_step_checkpoint_missing_file", ck, "a checkpoint without training_state.safetensors",
      "training_state.safetensors|adapter", [](const fs::path& d) {
        const fs::path ckpt = copied_checkpoint(d);
        fs::remove(ckpt / "training_state.safetensors");
        write_file(d / "batch.jsonl", "{\"input_ids\": [1, 2], \"labels\": [1, 2]}\n");
        Invocation inv = dump_step(d, d / "batch.jsonl");
        inv.args = inv.args + std::vector<std::string>{"--checkpoint", ckpt.string()};
        return inv;
      });
  return c;
}

const std::vector<CatalogueCase>& all_cases() {
  static const std::vector<CatalogueCase> cases = catalogue();
  return cases;
}

// Every path under `dir` (relative), to compare before and after a run.
std::set<std::string> tree_of(const fs::path& dir) {
  std::set<std::string> paths;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    paths.insert(fs::relative(entry.path(), dir).string());
  return paths;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

bool contains_any(const std::string& text, const std::string& alternatives) {
  size_t from = 0;
  while (from <= alternatives.size()) {
    const size_t bar = alternatives.find('|', from);
    const std::string part =
        alternatives.substr(from, bar == std::string::npos ? std::string::npos : bar - from);
    if (!part.empty() && text.find(part) != std::string::npos) return true;
    if (bar == std::string::npos) break;
    from = bar + 1;
  }
  return false;
}

// Per-case measurements for the report (one process runs all cases; gtest may filter).
struct Measured {
  std::string name, area, input, error_line;
  long rss_kib = 0;
  double seconds = 0;
};
std::vector<Measured>& measured() {
  static std::vector<Measured> all;
  return all;
}

class Catalogue : public ::testing::TestWithParam<CatalogueCase> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("smol_catalogue_" + std::to_string(::getpid()) + "_" + GetParam().name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_P(Catalogue, FailsCleanly) {
  const CatalogueCase& c = GetParam();
  if (!c.pending.empty())
    GTEST_SKIP() << "SKIPPED LOUDLY: " << c.name << " waits for a fix in " << c.pending;
  if (c.needs == Needs::Gguf && !fs::exists(kGgufFile))
    GTEST_SKIP() << "SKIPPED LOUDLY: " << kGgufFile << " is missing (scripts/fetch-model.sh)";
  const fs::path work = dir_ / "work";
  fs::create_directories(work);
  const Invocation inv = c.setup(work);
  std::string stdin_path;
  if (!inv.stdin_text.empty()) {
    stdin_path = (dir_ / "stdin.txt").string();
    write_file(stdin_path, inv.stdin_text);
  }
  const std::set<std::string> before = tree_of(work);
  std::vector<std::string> argv{kBinary};
  argv = argv + inv.args;
  const ChildResult r =
      run_child(argv, work.string(), stdin_path, (dir_ / "child").string(), kTimeoutSeconds);
  const std::string output = r.out + r.err;
  std::vector<std::string> errors;  // on stderr, where the CLI prints them
  for (const std::string& line : lines_of(r.err))
    if (line.rfind("error:", 0) == 0) errors.push_back(line);
  for (const std::string& line : lines_of(r.out))
    EXPECT_EQ(line.find("error:"), std::string::npos) << c.name << ": stdout holds " << line;

  ASSERT_FALSE(r.timed_out) << c.name << ": still running after " << kTimeoutSeconds
                            << " s (a hang); output:\n"
                            << output.substr(0, 2000);
  ASSERT_TRUE(r.exited) << c.name << ": killed by signal " << r.signal << "; output:\n"
                        << output.substr(0, 2000);
  EXPECT_EQ(r.exit_code, 1) << c.name << ": output:\n" << output.substr(0, 2000);
  ASSERT_EQ(errors.size(), 1u) << c.name << ": expected exactly one \"error:\" line; output:\n"
                               << output.substr(0, 2000);
  EXPECT_TRUE(contains_any(errors[0], c.expect))
      << c.name << ": the error line does not contain \"" << c.expect << "\":\n"
      << errors[0].substr(0, 2000);
  EXPECT_LE(errors[0].size(), kMaxErrorBytes)
      << c.name << ": the error line is " << errors[0].size() << " bytes long";
  EXPECT_LT(r.max_rss_kib, kMaxRssKib) << c.name << ": peak RSS " << r.max_rss_kib << " KiB";
  const std::set<std::string> after = tree_of(work);
  std::vector<std::string> created;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(created));
  EXPECT_TRUE(created.empty()) << c.name << ": the failed run left " << created.size()
                               << " new path(s), e.g. " << (created.empty() ? "" : created[0]);
  measured().push_back({c.name, c.area, c.input, errors[0], r.max_rss_kib, r.seconds});
  std::printf("[catalogue] %-40s rss %6ld KiB  %5.2f s  %s\n", c.name.c_str(), r.max_rss_kib,
              r.seconds, errors[0].substr(0, 160).c_str());
}

INSTANTIATE_TEST_SUITE_P(BadInputs, Catalogue, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<CatalogueCase>& info) {
                           return info.param.name;
                         });

// The catalogue has at least 60 cases, their names are unique, and docs/bad-inputs.md lists
// every one of them (its table is the user-facing copy of this one).
TEST(CatalogueDocs, EveryCaseIsDocumented) {
  const std::vector<CatalogueCase>& cases = all_cases();
  EXPECT_GE(cases.size(), 60u);
  std::set<std::string> names;
  const std::string doc = slurp(kSourceDir + "/docs/bad-inputs.md");
  ASSERT_FALSE(doc.empty()) << "docs/bad-inputs.md is missing";
  for (const CatalogueCase& c : cases) {
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name " << c.name;
    EXPECT_NE(doc.find("`" + c.name + "`"), std::string::npos)
        << "docs/bad-inputs.md does not list the case `" << c.name << "`";
  }
}

// The other side of the context bound: a prompt that fits but leaves less room than
// --max-new-tokens asks for generates up to the context and stops there (exit 0, a warning,
// stop reason "length"), with the KV cache sized for the context, not the budget.
TEST(CatalogueBounds, GenerateStopsAtTheContext) {
  const fs::path dir =
      fs::temp_directory_path() / ("smol_catalogue_bounds_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  copy_tiny_model(dir / "model");
  const ChildResult r =
      run_child({kBinary, "generate", "--model", (dir / "model").string(), "--device", "cpu",
                 "--prompt", std::string(120, 'a'), "--max-new-tokens", "50"},
                dir.string(), "", (dir / "child").string(), kTimeoutSeconds);
  ASSERT_TRUE(r.exited) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: prompt (120 tokens) + --max-new-tokens 50 exceed the context "
                       "(128); generation stops after 8 tokens"),
            std::string::npos)
      << r.err;
  // At most the 8 positions the context leaves (fewer when a stop token comes first).
  const size_t at = r.err.find("generated ");
  ASSERT_NE(at, std::string::npos) << r.err;
  EXPECT_LE(std::stoi(r.err.substr(at + 10)), 8) << r.err;
  if (!HasFailure()) fs::remove_all(dir);
}

// When one process runs several cases (the binary run directly, not through ctest), prints the
// worst peak RSS and writes every case's measurements (name, peak RSS, seconds, error line) as
// JSON to $SMOL_CATALOGUE_REPORT, from which docs/bad-inputs.md's numbers are taken.
class ReportEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    fs::remove_all(fs::temp_directory_path() /
                   ("smol_catalogue_run_" + std::to_string(::getpid())));  // trained_run()
    const std::vector<Measured>& all = measured();
    if (all.empty()) return;
    const auto worst = std::max_element(
        all.begin(), all.end(),
        [](const Measured& a, const Measured& b) { return a.rss_kib < b.rss_kib; });
    // The binary's own floor: a CUDA build maps ~270 MB of CUDA libraries before main().
    const fs::path tmp = fs::temp_directory_path();
    const fs::path capture = tmp / ("smol_catalogue_baseline_" + std::to_string(::getpid()));
    const ChildResult baseline =
        run_child({kBinary, "--version"}, tmp.string(), "", capture.string(), 20);
    fs::remove(capture.string() + ".out");
    fs::remove(capture.string() + ".err");
    std::printf(
        "[catalogue] %zu cases; worst peak RSS %ld KiB (%s); `smolengine --version` "
        "alone: %ld KiB\n",
        all.size(), worst->rss_kib, worst->name.c_str(), baseline.max_rss_kib);
    if (const char* path = std::getenv("SMOL_CATALOGUE_REPORT")) {
      nlohmann::json cases = nlohmann::json::array();
      for (const Measured& m : all)
        cases.push_back({{"name", m.name},
                         {"area", m.area},
                         {"input", m.input},
                         {"rss_kib", m.rss_kib},
                         {"seconds", m.seconds},
                         {"error", m.error_line}});
      write_file(path,
                 nlohmann::json{{"baseline_kib", baseline.max_rss_kib}, {"cases", cases}}.dump(1));
    }
  }
};
[[maybe_unused]] ::testing::Environment* const kReport =
    ::testing::AddGlobalTestEnvironment(new ReportEnvironment);

}  // namespace
}  // namespace smol::test

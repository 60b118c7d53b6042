#!/usr/bin/env python3
"""Golden rendered + tokenised training examples (tests/data/example_golden_test.cpp).

Run from the repository root with the fixture venv, after scripts/fetch-model.sh:
    /work/venv/bin/python tests/golden/data/make_example_goldens.py

The seed's data rules of docs/seed-behaviour.md §2.2-§2.6, re-implemented here in plain
Python, independently of the C++ (data/prompt_render.h, data/example_builder.h):
  - values are str(value), None -> "" (§2.3); a row whose target is None is dropped;
  - field inference (§2.2) when input_fields / target_field are unset;
  - prompt = prompt_template.format_map(inputs only), a placeholder naming anything else
    renders "" (B4); without a template the non-empty "field: value" pairs joined by blank
    lines; .strip() when strip_prompt; response = response_template.format_map(inputs +
    {target}).strip() (§2.3);
  - add_bos_token prepends the BOS token's text to the prompt; completion = assistant_prefix +
    completion_prefix + response + completion_suffix; both halves encoded separately without
    special tokens (special-token text inside them still becomes its id); EOS (id 0,
    "<|endoftext|>", the seed's) appended unless already last (§2.4);
  - truncation when |p| + |c| > max_length (§2.5), empty completions dropped (B6);
  - labels = [-100] * |p| + c (§2.6).

Tokenizer: the same reference as tests/golden/tokenizer/make_golden.py (imported from there):
a `tokenizers.Tokenizer` built from the GGUF's own vocab and merges and configured as
SmolLM2's tokenizer.json (docs/formats.md §5). transformers' GGUF conversion is not used: it
drops SmolLM2's Digits pre-tokenizer (docs/formats.md traps).

Output: examples.json (compact, one row or example per line, < 300 KB). Row sets hold the
dataset rows as the exact JSONL lines a dataset file would contain (so number text such as
100.0 is unambiguous), except "gsm8k_train_first64": the first 64 lines of
<data root>/gsm8k/train.jsonl, named by file and FNV-1a 64 fingerprint (their text is in the
rendered strings anyway). Each case names a row set and how many of its rows it uses, its
PromptFormat / ExampleFormat settings, the fields it resolved, and per row either the expected
example (rendered prompt / response, input_ids, labels, prompt_tokens) or why the row was
dropped ("null_target", "empty_completion"). Cases with the same rows and prompt format store
the rendered strings once; the later ones name that case in "rendering_of".

Truncation note: the overflow cut from the completion is clamped to its length (an
over-long cut empties it and the example is dropped, §2.5), never Python's wrapping
c[:len(c) - overflow].
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "golden", "tokenizer"))
import make_golden  # noqa: E402  (the tokenizer goldens' reference tokenizer)

GSM8K_TRAIN = os.path.join(ROOT, "..", "shared", "data", "gsm8k", "train.jsonl")
EOS_TEXT, EOS_ID = "<|endoftext|>", 0  # the seed's EOS (configs/smol/*.yaml tokenizer.eos_token)
IGNORE = -100

TARGET_CANDIDATES = ["response", "answer", "output", "target", "completion", "text", "label"]
INPUT_CANDIDATES = ["instruction", "input", "question", "query", "context", "prompt", "text"]

GSM8K_TEMPLATE = ("Below is a math problem. Solve it step by step and provide the final answer."
                  "\n\n### Question:\n{question}\n\n### Answer:\n")
METAMATH_TEMPLATE = ("Below is an instruction that describes a task. Write a response that "
                     "appropriately completes the request.\n\n### Instruction:\n{query}\n\n"
                     "### Response:\n{response}\n")


# ---- the seed's rules (docs/seed-behaviour.md §2) ------------------------------------------

class BlankMissing(dict):
    """format_map mapping: a placeholder that names no input renders as "" (§2.3, B4)."""

    def __missing__(self, key):
        return ""


def text_of(value):
    return "" if value is None else str(value)


def columns_of(rows):
    columns = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    return columns


def resolve_fields(rows, prompt_format):
    """§2.2: explicit fields win; otherwise the first target candidate and the input
    candidates present (in candidate order), else every non-target column."""
    columns = columns_of(rows)
    target = prompt_format["target_field"] or next(c for c in TARGET_CANDIDATES if c in columns)
    if prompt_format["input_fields"]:
        inputs = list(prompt_format["input_fields"])
    else:
        inputs = [c for c in INPUT_CANDIDATES if c in columns and c != target]
        if not inputs:
            inputs = [c for c in columns if c != target]
    assert target not in inputs
    return inputs, target


def render(row, inputs, target, prompt_format):
    """§2.3: (prompt, response), or None when the target is None."""
    if row[target] is None:
        return None
    values = {field: text_of(row[field]) for field in inputs}
    template = prompt_format["prompt_template"]
    if template is not None:
        prompt = template.format_map(BlankMissing(values))
    else:
        prompt = "\n\n".join(f"{field}: {values[field]}" for field in inputs if values[field])
    if prompt_format["strip_prompt"]:
        prompt = prompt.strip()
    response_values = dict(values)
    response_values["target"] = text_of(row[target])
    response = prompt_format["response_template"].format_map(
        BlankMissing(response_values)).strip()
    return prompt, response


def tokenize(tok, bos_text, prompt, response, example_format):
    """§2.4-§2.6: (input_ids, labels, prompt_tokens), or None when the completion is empty."""
    if example_format["add_bos"]:
        prompt = bos_text + prompt
    completion = (example_format["assistant_prefix"] + example_format["completion_prefix"] +
                  response + example_format["completion_suffix"])
    p = tok.encode(prompt, add_special_tokens=False).ids
    c = tok.encode(completion, add_special_tokens=False).ids
    if example_format["append_eos"] and (not c or c[-1] != EOS_ID):
        c = c + [EOS_ID]
    max_length = example_format["max_length"]
    if len(p) + len(c) > max_length:
        overflow = len(p) + len(c) - max_length
        if example_format["truncate_prompt_only"]:
            cut = min(len(p), overflow)
            p = p[cut:]
            overflow -= cut
        if overflow > 0:
            cut = min(len(c), overflow)  # explicit: c[:len(c) - overflow] would wrap around
            c = c[:len(c) - cut] if example_format["truncate_from_end"] else c[cut:]
    if not c:
        return None
    return p + c, [IGNORE] * len(p) + c, len(p)


# ---- the cases ------------------------------------------------------------------------------

def prompt_format(input_fields=None, target_field="", prompt_template=None,
                  response_template="{target}", strip_prompt=True):
    return {"input_fields": input_fields or [], "target_field": target_field,
            "prompt_template": prompt_template, "response_template": response_template,
            "strip_prompt": strip_prompt}


def example_format(max_length, append_eos=True, add_bos=False, assistant_prefix="",
                   completion_prefix="", completion_suffix="", truncate_prompt_only=True,
                   truncate_from_end=True):
    return {"max_length": max_length, "append_eos": append_eos, "add_bos": add_bos,
            "assistant_prefix": assistant_prefix, "completion_prefix": completion_prefix,
            "completion_suffix": completion_suffix,
            "truncate_prompt_only": truncate_prompt_only, "truncate_from_end": truncate_from_end}


def gsm8k_lines(count):
    with open(GSM8K_TRAIN, encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(count)]


def fnv1a64_hex(data):
    """FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) over bytes, as hex."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def file_row_set(lines):
    """How examples.json names the GSM8K rows: by file and fingerprint, not verbatim (their
    text is in the rendered strings already, and examples.json stays small)."""
    return {"file": "gsm8k/train.jsonl", "first_lines": len(lines),
            "fnv1a64": fnv1a64_hex("".join(line + "\n" for line in lines).encode("utf-8"))}


# MetaMathQA-shaped records (query, response, type, original_question), written here: the
# dataset itself is not on the build machines. Fields are inferred as in 135m_metamath.yaml.
METAMATH_ROWS = [
    {"query": "What is $\\frac{1}{2}+\\frac{1}{4}$?",
     "response": "We have $\\frac{1}{2}+\\frac{1}{4}=\\frac{3}{4}$.\nThe answer is: \\frac{3}{4}",
     "type": "MATH_AnsAug", "original_question": "What is $\\frac{1}{2}+\\frac{1}{4}$?"},
    {"query": "James buys 5 packs of beef that are 4 pounds each. The price of beef is $5.50 "
              "per pound. How much did he pay?",
     "response": "He bought 5*4=<<5*4=20>>20 pounds of beef\nSo he paid 20*5.5=$<<20*5.5=110>>"
                 "110\n#### 110\nThe answer is: 110",
     "type": "GSM_Rephrased", "original_question": "James buys 5 packs of beef."},
    {"query": "  If $x^2 = 49$ and $x > 0$, find {x}.  \n",
     "response": "\n\nSince $x>0$, $x=\\boxed{7}$.\nThe answer is: 7\n",
     "type": "MATH_SV", "original_question": None},
    {"query": "Compute $\\dbinom{8}{4}$.", "response": None, "type": "MATH_AnsAug",
     "original_question": "Compute $\\dbinom{8}{4}$."},
    {"query": "", "response": "The answer is: 0", "type": "GSM_FOBAR",
     "original_question": ""},
    {"query": "Évaluer 2⁵ − 3 ≈ ? (réponse en 日本語 も OK) 🙂",
     "response": "2⁵ − 3 = 29 <|im_end|>\nThe answer is: 29", "type": "MATH_AnsAug",
     "original_question": "Évaluer"},
]

# Rows for the template-less "field: value" rendering and its settings (case e/f/g).
MISC_ROWS = [
    {"instruction": "Summarise {this} text}", "input": "A set {x | x > 0} and {{braces}}",
     "n": 3, "flag": True, "score": 2.5, "output": "Answer: {target} stays literal"},
    {"instruction": "Add the numbers.", "input": "", "n": -7, "flag": False, "score": 100.0,
     "output": "  42 \n\n"},
    {"instruction": "This row has no target.", "input": "x", "n": 0, "flag": True,
     "score": 0.1, "output": None},
    {"instruction": "\u00a0\u3000 héllo wörld 日本 \u2028", "input": None, "n": 12345678901,
     "flag": False, "score": 1e-05, "output": "ok<|endoftext|>"},
    {"instruction": "", "input": None, "n": None, "flag": None, "score": None,
     "output": "An empty prompt."},
    {"instruction": "Explain <|im_start|> and <|im_end|> tokens.\n\tIndented  line  ",
     "input": "tab\tand\r\nCRLF", "n": 1, "flag": True, "score": -0.0,
     "output": "They are <|im_end|> special\n<|endoftext|> inside"},
    {"instruction": " ".join(["A long instruction that needs truncation, word %d." % i
                             for i in range(12)]),
     "input": "tail", "n": 2, "flag": False, "score": 0.0001,
     "output": "Short answer after a long prompt with the BOS cut away."},
]

# str() of JSON floats at the edges of Python's repr (shortest round trip; fixed notation for
# decimal exponents -4..15, exponent notation otherwise, "e+16" / "e-05" spelling). One float
# column, as HF's JSON loader would type it; the answer says which value the row holds.
FLOAT_VALUES = [0.1, 2.5, 100.0, -0.0, 1e-05, 0.0001, 0.00012345, 123456789012345.6, 1e15,
                1.5e15, 9999999999999998.0, 1e16, 1.2345e17, 1e22, 1.5e300, 5e-324, -7.25e-7]
FLOAT_ROWS = [{"value": v, "answer": f"row {i}"} for i, v in enumerate(FLOAT_VALUES)]


def build_cases(gsm8k):
    gsm_pf = prompt_format(input_fields=["question"], target_field="answer",
                           prompt_template=GSM8K_TEMPLATE, response_template="{target}\n")
    misc_fields = ["instruction", "input", "n", "flag", "score"]
    return [
        ("gsm8k_max1024", "configs/smol/135m_gsm8k.yaml on the first 64 train rows",
         "gsm8k_train_first64", 64, gsm_pf, example_format(1024)),
        ("gsm8k_max96", "the same rows at max_length 96: prompt-first truncation from the "
         "start, then the completion's end (EOS and answer cut, B6)",
         "gsm8k_train_first64", 64, gsm_pf, example_format(96)),
        ("gsm8k_completion_only_max128", "truncate_prompt_only false: all overflow off the "
         "completion's end; a prompt >= 128 tokens empties it (dropped)",
         "gsm8k_train_first64", 16, gsm_pf, example_format(128, truncate_prompt_only=False)),
        ("gsm8k_from_start_max96", "truncate_from_end false: the prompt first, then the "
         "completion's start", "gsm8k_train_first64", 16, gsm_pf,
         example_format(96, truncate_from_end=False)),
        ("gsm8k_completion_only_from_start_max128", "both false: overflow off the "
         "completion's start, the prompt kept whole", "gsm8k_train_first64", 16, gsm_pf,
         example_format(128, truncate_prompt_only=False, truncate_from_end=False)),
        ("metamath_template", "configs/smol/135m_metamath.yaml's template, fields inferred: "
         "{response} renders empty (B4)", "metamath_style", len(METAMATH_ROWS),
         prompt_format(prompt_template=METAMATH_TEMPLATE), example_format(512)),
        ("pairs_bos_prefixes", "no prompt_template (non-empty 'field: value' pairs joined by "
         "blank lines), add_bos_token, assistant_prefix, completion_prefix/suffix, null target "
         "dropped, braces in values, max_length 48 cuts a prompt's BOS",
         "misc", len(MISC_ROWS), prompt_format(input_fields=misc_fields, target_field="output"),
         example_format(48, add_bos=True, assistant_prefix="Assistant:",
                        completion_prefix=" <<", completion_suffix=">> ")),
        ("template_no_strip_eos_kept", "strip_prompt false, literal braces and {field!s} in the "
         "template, a response template naming an input, a target already ending in EOS",
         "misc", len(MISC_ROWS),
         prompt_format(input_fields=misc_fields, target_field="output",
                       prompt_template="  {{Task}} {instruction!s} [{input}] n={n} "
                                       "flag={flag} score={score} {output}{nope}\n",
                       response_template="({n}) {target}", strip_prompt=False),
         example_format(1024)),
        ("no_eos", "append_eos_token false: an empty completion is dropped",
         "misc", len(MISC_ROWS),
         prompt_format(input_fields=misc_fields, target_field="output",
                       response_template="{input}"),
         example_format(1024, append_eos=False)),
        ("python_float_text", "str() of float values: Python's repr spelling",
         "floats", len(FLOAT_ROWS),
         prompt_format(input_fields=["value"], target_field="answer",
                       prompt_template="value={value}", response_template="{value} {target}"),
         example_format(1024)),
    ], {
        "gsm8k_train_first64": gsm8k,
        "metamath_style": [json.dumps(r, ensure_ascii=False) for r in METAMATH_ROWS],
        "misc": [json.dumps(r, ensure_ascii=False) for r in MISC_ROWS],
        "floats": [json.dumps(r) for r in FLOAT_ROWS],
    }


def run_case(tok, bos_text, spec, lines, rendering_of):
    """One case's JSON. The rendered strings are written once per (row set, prompt format):
    a later case with the same pair names that case in "rendering_of" instead."""
    name, description, row_set, row_count, pf, ef = spec
    rows = [json.loads(line) for line in lines[:row_count]]
    inputs, target = resolve_fields(rows, pf)
    key = (row_set, json.dumps(pf))
    earlier = rendering_of.setdefault(key, name)
    examples = []
    for index, row in enumerate(rows):
        rendered = render(row, inputs, target, pf)
        if rendered is None:
            examples.append({"row": index, "dropped": "null_target"})
            continue
        prompt, response = rendered
        built = tokenize(tok, bos_text, prompt, response, ef)
        entry = {"row": index}
        if earlier == name:
            entry.update(prompt=prompt, response=response)
        if built is None:
            entry["dropped"] = "empty_completion"
        else:
            entry["input_ids"], entry["labels"], entry["prompt_tokens"] = built
        examples.append(entry)
    case = {"name": name, "description": description, "rows": row_set, "row_count": row_count,
            "prompt_format": pf, "example_format": ef,
            "resolved_fields": {"inputs": inputs, "target": target}}
    if earlier != name:
        case["rendering_of"] = earlier
    case["examples"] = examples
    return case


def coverage(case, lines, tok, bos_text):
    """What a case exercises, so the goldens cannot silently stop testing something."""
    pf, ef = case["prompt_format"], case["example_format"]
    stats = {"kept": 0, "null_target": 0, "empty_completion": 0, "prompt_cut": 0,
             "prompt_gone": 0, "completion_cut": 0}
    rows = [json.loads(line) for line in lines]
    inputs, target = case["resolved_fields"]["inputs"], case["resolved_fields"]["target"]
    for e in case["examples"]:
        if e.get("dropped"):
            stats[e["dropped"]] += 1
            continue
        stats["kept"] += 1
        prompt, response = render(rows[e["row"]], inputs, target, pf)
        whole = tokenize(tok, bos_text, prompt, response, dict(ef, max_length=10 ** 9))
        full_p = whole[2]
        if e["prompt_tokens"] < full_p:
            stats["prompt_cut"] += 1
        if e["prompt_tokens"] == 0 and full_p > 0:
            stats["prompt_gone"] += 1
        if len(e["input_ids"]) - e["prompt_tokens"] < len(whole[0]) - full_p:
            stats["completion_cut"] += 1
    return stats


def write_json(path, header, row_sets, cases):
    """Compact JSON, one row or example per line (small, and diffs stay readable)."""
    def dump(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    parts = [dump(header)[:-1] + ',\n"row_sets":{']
    parts.append(",\n".join(
        f"{dump(k)}:" + (dump(v) if isinstance(v, dict) else
                         "[\n" + ",\n".join(dump(line) for line in v) + "]")
        for k, v in row_sets.items()) + "},")
    case_texts = []
    for case in cases:
        head = {k: v for k, v in case.items() if k != "examples"}
        case_texts.append(dump(head)[:-1] + ',"examples":[\n' +
                          ",\n".join(dump(e) for e in case["examples"]) + "]}")
    parts.append('"cases":[\n' + ",\n".join(case_texts) + "]}\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    with open(path, encoding="utf-8") as f:
        json.load(f)  # well-formed


def main():
    tok, _ = make_golden.build_reference()
    from gguf import GGUFReader
    reader = GGUFReader(make_golden.GGUF)
    field = reader.fields["tokenizer.ggml.bos_token_id"]
    bos_id = int(field.parts[field.data[0]][0])
    bos_text = tok.id_to_token(bos_id)
    assert tok.token_to_id(EOS_TEXT) == EOS_ID
    # The pinned self-check ids of docs/formats.md §5: the reference is the real tokenizer.
    assert tok.encode("Hello world! 123").ids == [19556, 905, 17, 216, 33, 34, 35]

    specs, row_sets = build_cases(gsm8k_lines(64))
    rendering_of = {}
    cases, stats = [], {}
    for spec in specs:
        case = run_case(tok, bos_text, spec, row_sets[spec[2]], rendering_of)
        stats[case["name"]] = coverage(case, row_sets[case["rows"]], tok, bos_text)
        print(f"{case['name']:42s} {stats[case['name']]}")
        cases.append(case)

    # Each case must exercise what its description claims.
    assert stats["gsm8k_max1024"]["prompt_cut"] == 0 and stats["gsm8k_max1024"]["kept"] == 64
    s = stats["gsm8k_max96"]
    assert s["prompt_cut"] > s["prompt_gone"] > 0 and s["completion_cut"] > 0, s
    for name in ("gsm8k_completion_only_max128", "gsm8k_completion_only_from_start_max128"):
        assert stats[name]["empty_completion"] > 0 and stats[name]["completion_cut"] > 0
        assert stats[name]["prompt_cut"] == 0
    assert stats["gsm8k_from_start_max96"]["completion_cut"] > 0
    assert stats["metamath_template"]["null_target"] == 1
    assert stats["pairs_bos_prefixes"]["null_target"] == 1
    assert stats["pairs_bos_prefixes"]["prompt_cut"] >= 1
    assert stats["no_eos"]["empty_completion"] > 0

    header = {"generator": "tests/golden/data/make_example_goldens.py",
              "tokenizer": {"bos_token": bos_text, "bos_id": bos_id, "eos_token": EOS_TEXT,
                            "eos_id": EOS_ID}}
    path = os.path.join(HERE, "examples.json")
    row_sets["gsm8k_train_first64"] = file_row_set(row_sets["gsm8k_train_first64"])
    write_json(path, header, row_sets, cases)
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()

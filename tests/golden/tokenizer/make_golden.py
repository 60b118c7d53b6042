#!/usr/bin/env python3
"""Golden fixtures for the tokenizer tests (tests/tokenizer/), from the PyPI reference stack.

Run from the repository root with the fixture venv (torch/transformers/tokenizers/gguf):
    /work/venv/bin/python tests/golden/tokenizer/make_golden.py

Reference tokenizer: a `tokenizers.Tokenizer` built from the GGUF's own vocab and merges,
configured as SmolLM2's tokenizer.json is (docs/formats.md §5): BPE with unk None and
byte_fallback False; pre_tokenizer Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)]; decoder ByteLevel; the 17 specials as
added special tokens. transformers' own GGUF conversion is loaded too and compared with it on
every GSM8K text (disagreements are printed, not trusted either way).

Outputs (all small, committed):
  edge_cases_gpt2.json the same texts through the "gpt2" flavour (ByteLevel without Digits)
  edge_cases.json      text -> ids and decode strings for Unicode/whitespace/digit/special cases
  decode_cases.json    ids -> decoded text (invalid UTF-8 -> U+FFFD, skip_special)
  gsm8k_head.json      full ids of the first 50 rows of train.jsonl (question and answer)
  gsm8k_hashes.txt     one line per GSM8K text: "<length> <fnv1a64 hex>" (see below)
  chat_template.json   conversations rendered by jinja2 with the GGUF's chat_template
  tiny/tokenizer.json  a tiny BPE trained here with `tokenizers` (merges as pairs) ...
  tiny/golden.json     ... and its ids for a few texts

FNV-1a 64 of an id sequence: offset 0xcbf29ce484222325, prime 0x100000001b3, over the bytes of
each id as a little-endian int32, in order. Lines of gsm8k_hashes.txt follow
train.jsonl then test.jsonl, row by row, question then answer.
"""
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers, AddedToken

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.dirname(os.path.abspath(__file__))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
GSM8K = os.path.join(ROOT, "..", "shared", "data", "gsm8k")


def gguf_string(reader, key):
    field = reader.fields[key]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def gguf_string_array(reader, key):
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def gguf_int_array(reader, key):
    field = reader.fields[key]
    return [int(field.parts[i][0]) for i in field.data]


def build_reference(flavour="smollm"):
    reader = GGUFReader(GGUF)
    tokens = gguf_string_array(reader, "tokenizer.ggml.tokens")
    token_types = gguf_int_array(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in gguf_string_array(reader, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate tokens in GGUF vocab"
    bpe = models.BPE(vocab=vocab, merges=merges, unk_token=None, byte_fallback=False,
                     fuse_unk=False, dropout=None)
    tok = Tokenizer(bpe)
    tok.normalizer = None
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                          use_regex=True)
    if flavour == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:  # "gpt2": ByteLevel alone
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    specials = [tokens[i] for i, t in enumerate(token_types) if t == 3]
    assert specials == [tokens[i] for i in range(17)], specials
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    template = gguf_string(reader, "tokenizer.chat_template")
    return tok, template


def fnv1a64(ids):
    h = 0xCBF29CE484222325
    for b in np.asarray(ids, dtype="<i4").tobytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def gsm8k_texts():
    texts = []
    for split in ("train", "test"):
        with open(os.path.join(GSM8K, split + ".jsonl"), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                texts.append(row["question"])
                texts.append(row["answer"])
    return texts


EDGE_CASES = [
    ("empty", ""),
    ("hello", "Hello, we can use"),
    ("france", "The capital of France is"),
    ("newline", "\n"),
    ("hello_digits", "Hello world! 123"),
    ("multi_spaces", "  multiple   spaces"),
    ("cafe", "Café déjà vu."),
    ("accents", "naïve façade résumé Ångström Øre"),
    ("cjk", "日本語のテキストと中文字符，한국어"),
    ("emoji", "I ❤️ tokenizers 🤗🚀 👩‍👩‍👧‍👦 flags 🇫🇷"),
    ("combining", "e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353"),
    ("rtl", "שלום עולם مرحبا بالعالم"),
    ("whitespace_runs", "a    b\t\tc \t d\n\n\ne   \n  f"),
    ("tabs", "\tindented\n\t\tcode();"),
    ("crlf", "line one\r\nline two\r\n"),
    ("leading_trailing", "   leading and trailing   "),
    ("only_spaces", "     "),
    ("digits", "12345"),
    ("decimal", "3.14"),
    ("thousands", "1,234"),
    ("arabic_indic_digit", "٣ and ٣٤"),
    ("other_numerics", "½ ² Ⅻ ① ¼x"),
    ("space_digits", "! 123 x 4"),
    ("contractions", "it's It'S we'll they've I'm he'd don't 'RE 'Ll"),
    ("specials_in_text", "<|im_start|>user\nhi<|im_end|>"),
    ("specials_adjacent", "<|endoftext|><|im_start|><|im_end|>x<file_sep>"),
    ("partial_special", "<|im_sta and <|im_end and <|im_start"),
    ("special_lookalike", "<|im_start |> < |im_end|> <|IM_START|>"),
    ("missing_bytes", "a\x04b\x06c\x13d\x14e\x16f\x1dg"),
    ("missing_bytes_merge", "th\x04e cat\x06s"),
    ("control_chars", "\x00\x01\x7f\x1b[0m"),
    ("math", "$<<16-3-4=9>>9 = 2*3/4 ^ (x+y) >= 10%"),
    ("code", "def f(x):\n    return x**2  # square\n"),
    ("urls", "https://huggingface.co/HuggingFaceTB/SmolLM2-135M?x=1&y=2"),
    ("mixed_scripts", "Привет мир! Γειά σου κόσμε. नमस्ते"),
    ("long_word", "pneumonoultramicroscopicsilicovolcanoconiosis"),
    ("unicode_spaces", "a\u00a0b\u2003c\u3000d\u200be"),
    ("quotes", "“smart” ‘quotes’ — dash … ellipsis"),
    ("trailing_newline_space", "end \n"),
    ("space_before_special", "hi <|im_end|> there"),
    ("unicode_line_seps", "a\x85b\u2028c\u2029d\x0be\x0cf\x1cg\x1fh"),
    ("space_then_newline_digit", "x \n 7  \n8"),
    ("digit_after_letters", "abc123def x2y"),
    ("superscript_fraction", "x² + y³ = z⁴, ¾ cup"),
    ("apostrophe_variants", "'s 's' ’s `s '' 've'"),
    ("many_spaces", " " * 40 + "x" + "\t" * 9),
    ("long_punct", "=" * 50 + "!?" * 20),
]


def edge_case_fixture(tok):
    cases = []
    for name, text in EDGE_CASES:
        ids = tok.encode(text).ids
        cases.append({
            "name": name,
            "text": text,
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            # encode(text, add_special_tokens) never adds BOS here; parse of specials is on.
        })
    return cases


def gpt2_byte_chars():
    """GPT-2's byte -> char map (docs/formats.md §5), as in tokenizers' bytes_char()."""
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


byte_char = gpt2_byte_chars()


def decode_fixture(tok):
    vocab = tok.get_vocab()
    # Lone byte-chars of a multi-byte sequence: 'â' is byte 0xE2 (first byte of U+2019 etc.).
    lone = [vocab["â"]]
    # "€" is E2 82 AC: one id per byte-char, so that a decoder sees it split across ids.
    euro = [vocab[byte_char[b]] for b in "€".encode("utf-8")]
    cases = [
        {"ids": lone, "skip_special": False},
        {"ids": lone + tok.encode("abc").ids, "skip_special": False},
        {"ids": euro[:1] + tok.encode(" ok").ids, "skip_special": False},
        {"ids": euro, "skip_special": False},
        {"ids": euro[:2] + euro, "skip_special": False},
        {"ids": [1] + tok.encode("user\nhi").ids + [2, 0], "skip_special": False},
        {"ids": [1] + tok.encode("user\nhi").ids + [2, 0], "skip_special": True},
        {"ids": tok.encode("🤗 and é").ids, "skip_special": False},
        {"ids": [vocab["Ã"], vocab["©"]], "skip_special": False},  # 0xC3 0xA9 = é
        {"ids": [vocab["Ã"], vocab["Ã"]], "skip_special": False},  # two lone lead bytes
        {"ids": [vocab["ð"], vocab["Ł"], vocab["¤"]], "skip_special": False},  # truncated 4-byte
        {"ids": [], "skip_special": False},
    ]
    for c in cases:
        c["text"] = tok.decode(c["ids"], skip_special_tokens=c["skip_special"])
    return cases


def chat_fixture(tok, template):
    import jinja2
    env = jinja2.Environment()
    tmpl = env.from_string(template)
    conversations = [
        ([{"role": "user", "content": "What is 12*7?"}], True),
        ([{"role": "system", "content": "You are terse."},
          {"role": "user", "content": "Hi"}], True),
        ([{"role": "user", "content": "Natalia sold clips to 48 of her friends."},
          {"role": "assistant", "content": "She sold 48/2 = <<48/2=24>>24 clips.\n#### 72"}], False),
        ([{"role": "system", "content": ""},
          {"role": "user", "content": "multi\nline\n\ncontent "},
          {"role": "assistant", "content": "ok"},
          {"role": "user", "content": "Ünïcödé 🤗"}], True),
        ([{"role": "user", "content": "no prompt"}], False),
    ]
    out = []
    for messages, add_gen in conversations:
        text = tmpl.render(messages=messages, add_generation_prompt=add_gen)
        out.append({"messages": messages, "add_generation_prompt": add_gen, "text": text,
                    "ids": tok.encode(text).ids})
    # Cross-check one rendering with transformers' apply_chat_template machinery.
    try:
        from transformers.utils.chat_template_utils import render_jinja_template
        for c in out:
            rendered, _ = render_jinja_template(conversations=[c["messages"]],
                                                chat_template=template,
                                                add_generation_prompt=c["add_generation_prompt"])
            assert rendered[0] == c["text"], (rendered[0], c["text"])
        print("chat template: transformers' renderer agrees with jinja2 on", len(out))
    except ImportError as e:
        print("chat template: transformers renderer unavailable:", e)
    return out


def tiny_fixture():
    tiny_dir = os.path.join(OUT, "tiny")
    os.makedirs(tiny_dir, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=1,
                                  special_tokens=["<|endoftext|>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    corpus = []
    with open(os.path.join(GSM8K, "test.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 60:
                break
            row = json.loads(line)
            corpus += [row["question"], row["answer"]]
    tok.train_from_iterator(corpus, trainer=trainer)
    # A non-special added token whose text mixes a byte-char ("é") with a char outside the
    # byte map ("中"): the ByteLevel decoder then emits the whole token's UTF-8 unchanged.
    tok.add_tokens([AddedToken("é中x", special=False, normalized=False)])
    path = os.path.join(tiny_dir, "tokenizer.json")
    tok.save(path, pretty=False)
    texts = ["Janet's ducks lay 16 eggs per day.", "  The answer is 42!\n", "<|endoftext|>end",
             "héllo wörld", "<pad><pad> x", ""]
    texts.append("aé中xb <pad>")
    golden = []
    for t in texts:
        ids = tok.encode(t).ids
        golden.append({"text": t, "ids": ids,
                       "decoded": tok.decode(ids, skip_special_tokens=False),
                       "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    with open(os.path.join(tiny_dir, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
    merges = json.load(open(path))["model"]["merges"]
    print("tiny tokenizer.json:", os.path.getsize(path), "bytes; merges stored as",
          type(merges[0]).__name__)


def compare_with_transformers(tok, gpt2_tok, texts):
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))
    print("transformers GGUF tokenizer:", type(hf).__name__, "bos", hf.bos_token, "eos",
          hf.eos_token, "unk", hf.unk_token, "pad", hf.pad_token)
    extra = [t for _, t in EDGE_CASES]
    disagreements = 0
    for i, text in enumerate(texts + extra):
        a = tok.encode(text).ids
        b = hf(text, add_special_tokens=True)["input_ids"]
        if a != b:
            disagreements += 1
            if disagreements <= 10:
                where = f"gsm8k text {i}" if i < len(texts) else f"edge case {extra.index(text)}"
                print(f"DISAGREE {where}: {text[:60]!r}\n  reference   {a[:40]}\n"
                      f"  transformers {b[:40]}")
    print(f"transformers vs reference: {disagreements} disagreements over "
          f"{len(texts)} GSM8K texts + {len(extra)} edge cases")
    # transformers' GGUF converter builds a bare ByteLevel pre-tokenizer (no Digits); check
    # that this explains every disagreement by comparing with a "gpt2"-flavour reference.
    gpt2_disagreements = sum(
        gpt2_tok.encode(t).ids != hf(t, add_special_tokens=True)["input_ids"]
        for t in texts + extra)
    print(f"transformers vs gpt2-flavour reference (ByteLevel without Digits): "
          f"{gpt2_disagreements} disagreements")


def main():
    tok, template = build_reference()
    checks = {
        "Hello, we can use": [19556, 28, 392, 416, 722],
        "The capital of France is": [504, 3575, 282, 4649, 314],
        "\n": [198],
        "Hello world! 123": [19556, 905, 17, 216, 33, 34, 35],
        "  multiple   spaces": [216, 2701, 256, 5600],
        "Café déjà vu.": [51, 1939, 2756, 32564, 90, 16739, 386, 101, 30],
    }
    for text, want in checks.items():
        got = tok.encode(text).ids
        print("self-check", repr(text), "OK" if got == want else f"MISMATCH got {got} want {want}")

    with open(os.path.join(OUT, "edge_cases.json"), "w", encoding="utf-8") as f:
        json.dump(edge_case_fixture(tok), f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "decode_cases.json"), "w", encoding="utf-8") as f:
        json.dump(decode_fixture(tok), f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "chat_template.json"), "w", encoding="utf-8") as f:
        json.dump({"template": template, "cases": chat_fixture(tok, template)}, f,
                  ensure_ascii=False, indent=1)

    texts = gsm8k_texts()
    encodings = tok.encode_batch(texts)
    with open(os.path.join(OUT, "gsm8k_head.json"), "w", encoding="utf-8") as f:
        json.dump([{"text": texts[i], "ids": encodings[i].ids} for i in range(100)], f,
                  ensure_ascii=False)
    with open(os.path.join(OUT, "gsm8k_hashes.txt"), "w") as f:
        for e in encodings:
            f.write(f"{len(e.ids)} {fnv1a64(e.ids):016x}\n")
    print("GSM8K texts:", len(texts), "tokens:", sum(len(e.ids) for e in encodings))
    tiny_fixture()
    gpt2_tok, _ = build_reference("gpt2")
    with open(os.path.join(OUT, "edge_cases_gpt2.json"), "w", encoding="utf-8") as f:
        json.dump([{"text": t, "ids": gpt2_tok.encode(t).ids} for _, t in EDGE_CASES], f,
                  ensure_ascii=False)
    if "--skip-transformers" not in sys.argv:
        compare_with_transformers(tok, gpt2_tok, texts)


if __name__ == "__main__":
    main()

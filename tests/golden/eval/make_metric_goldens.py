#!/usr/bin/env python3
"""Goldens for engine/eval: the seed's answer metrics and Python's float repr / parse / int repr.

extract_answer and normalize_answer below are the seed's utils/metrics.py rules as
docs/seed-behaviour.md §3 states them (the reference the C++ port is tested against). The
only difference: where the seed let OverflowError escape from int(float(a)) (a = "inf",
"1e999"), which crashed the whole evaluation, the golden records the exception and the value of
our documented fix, a.lower() (engine/eval/answer_metrics.h).

Writes tests/golden/eval/answer_metrics.json and tests/golden/eval/python_float.json.
Run from the repository root with any Python >= 3.6 (no packages needed):
    python3 tests/golden/eval/make_metric_goldens.py [path/to/gsm8k/test.jsonl]
The default data path is ../shared/data/gsm8k/test.jsonl.
"""
import json
import math
import random
import re
import struct
import sys

NUMBER = r"-?\d+\.?\d*"


def extract_answer(text):
    if not text:
        return ""
    if "####" in text:
        tail = text.split("####")[-1].strip()
        match = re.search(NUMBER, tail)
        return match.group(0) if match else tail
    lowered = text.lower()
    for phrase in ("the answer is", "final answer", "answer"):
        match = re.search(phrase + r"[:\s]+(" + NUMBER + ")", lowered)
        if match:
            return match.group(1)
    numbers = re.findall(NUMBER, text)
    if numbers:
        return numbers[-1]
    return text.strip()


def normalize_answer(answer):
    """Returns (normalized, exception the seed let escape or None)."""
    answer = answer.strip()
    try:
        if "/" in answer:
            parts = answer.split("/")
            if len(parts) == 2:
                return str(float(parts[0]) / float(parts[1])), None
        number = float(answer)
        if "." in answer:
            return str(number).rstrip("0").rstrip("."), None
        return str(int(number)), None
    except (ValueError, ZeroDivisionError):
        return answer.lower(), None
    except OverflowError:
        return answer.lower(), "OverflowError"


def bits(x):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", x))[0]


def from_bits(h):
    return struct.unpack("<d", struct.pack("<Q", int(h, 16)))[0]


TEXT_CASES = [
    "", " ", "\t\n ", "\u00a0\u3000", "42", " 42 ", "-7", "5.50", "5.0", "0.1", "5.", "-0",
    "1,234", "costs 1,234 dollars", "1,234,567", "#### 1,234", "#### 72", "####72", "#### -3",
    "#### 5.50", "####", "#### ", "#### no number here", "#### $18 dollars", "#####5",
    "a #### 1 #### 2", "#### 3/4", "3/4", "1/0", "0/0", "1/2/3", "-1/2", "1/3", "6/2",
    "1e20", "#### 1e20", "1.5e20", "12345678901234567890", "123456789012345678901234567890.5",
    "0.00001", "#### 0.0001", "1e-5", "inf", "#### inf", "nan", "NaN", "Infinity", "1e999",
    "The answer is: 42", "the answer is 42", "THE ANSWER IS:\n 42.", "The answer is : -3.5",
    "The answer is: forty-two", "The answer is: forty, so 12", "final answer: 7",
    "Final Answer:7", "final answer 7 then final answer: 8", "answer 3", "Answer: 3, not 4",
    "answers 3", "my answer:: \t 9 apples", "the answer is x, answer: 5", "no number at all",
    "No Number At All", "  Spaces Around  ", "5 apples and 6 pears", "x-5", "--5", "1.2.3",
    "3 - 4 = -1", "Ünïcödé ÀNSWER", "答案是 42", "答案是四十二", "Ⅻ ΑΠΑΝΤΗΣΗ", "İSTANBUL",
    "\u212a kelvin answer: 3", "naïve café ½", "1_000", "answer: 1_000", "#### 1_000",
    "#### +5", "+5", ".5", "#### .5", "the answer is .5", "0x10", "#### 0x10", "1 000",
    "answer\u00a0 12", "answer\u2028 12", "#### \u00a012\u00a0", "\x1c5\x1f", "Question: 2+2?",
    "-", "-.", ".", "#### -", "1/", "/2", "a/b", "-0.0", "#### -0", "100.000", "0.10",
    "007", "#### 007", "1.0e5", "#### 1.0e5", "2.5/0.5", "1e400/1", "inf/inf", "-1e400",
]

NORMALIZE_CASES = [
    "", " 12 ", "1_000", "+5", ".5", "5.", "1e5", "1E5", "1.e5", "inf", "-inf", "infinity",
    "-Infinity", "nan", "-nan", "1,000", "1/2", "1/2/3", "1 / 4", " 3 /4 ", "x/2", "2/x",
    "1e999", "-1e999", "1e-999", "1.5e20", "1.5e15", "0.1e-3", "0.00001", "123456789012345.0",
    "1234567890123456.0", "12345678901234567.0", "9007199254740993", "1e16", "1e15", "1e22",
    "1e23", "-0", "-0.0", "0.0", "00.100", "1__0", "_1", "1_", "1_.5", "1._5", "1e_5", "1e5_0",
    "0x10", "1e", "e5", ".", "-", "+", "- 5", "5 5", "\x1c7\x1f", "\u20037\u3000", "ABC", "Ab C",
    "İ", "ǅ", "Ⅻ", "ＡＢ", "\u212a",
]


def float_cases():
    rng = random.Random(20240611)
    values = [
        0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 0.2, 0.1 + 0.2, 1 / 3, 2 / 3, 2.0**53, 2.0**53 + 2,
        2.0**63, 2.0**64, 2.0**64 + 4096, 1e16, 1e15, 1e16 - 2, 9999999999999998.0,
        123456789012345.0, 1234567890123456.0, 12345678901234567.0, 1e-4, 1e-5, 0.0001,
        0.00009999, 0.00011, 1e22, 1e23, 1e300, 1.7976931348623157e308, 2.2250738585072014e-308,
        5e-324, 1e-323, 2.5e-308, math.pi, math.e, 100.0, 1e5, 123.456, 3.14e-10, 6.02e23,
        float("inf"), float("-inf"), float("nan"), 0.3, 4.35, 2.675, 1.005, 1e21, 1e-7,
    ]
    values += [v * 10.0 ** e for v in (1.0, 1.5, 9.999) for e in range(-8, 20)]
    for _ in range(700):  # uniform over finite bit patterns
        while True:
            x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
            if math.isfinite(x):
                break
        values.append(x)
    for _ in range(300):  # "nice" decimals, the kind that appear in answers
        values.append(rng.randint(-10**7, 10**7) / 10 ** rng.randint(0, 8))
    for _ in range(100):
        values.append(float(rng.randint(0, 2**60)))
    return values


def int_repr(x):
    try:
        return str(int(x))
    except (OverflowError, ValueError):
        return None


def parse_float(text):
    try:
        return bits(float(text))
    except ValueError:
        return None


def mangle(answer, kind):
    """Replaces the '#### N' last line of a GSM8K answer in one of several ways."""
    lines = answer.split("\n")
    n = lines[-1].replace("####", "").strip()
    body = "\n".join(lines[:-1])
    replacements = [
        f"The answer is: {n}", f"Final answer: {n}", f"answer {n}",
        f"#### {int(n.replace(',', '')):,}", "####", f"#### {n}.50", f"#### -{n}",
        f"#### {n}/4", None, f"THE ANSWER IS {n} dollars.", f"#### {n}.0e3",
        f"#### {n}\n#### 7", f"#####{n}", f"答案是 {n}。", f"#### {n}\nanswer: 1",
    ]
    replacement = replacements[kind % len(replacements)]
    return body if replacement is None else body + "\n" + replacement


FUZZ_PIECES = [
    "####", "#", "answer", "Answer", "the answer is", "THE ANSWER IS", "final answer", ":", " ",
    "\n", "\u00a0", "\u3000", "0", "1", "7", "42", "-", ".", "/", ",", "e", "E", "+", "_", "inf",
    "nan", "x", "é", "İ", "答", "$",
]


def fuzz_texts(count):
    """Random concatenations of the pieces the rules react to: a differential test."""
    rng = random.Random(7)
    return ["".join(rng.choice(FUZZ_PIECES) for _ in range(rng.randint(1, 12)))
            for _ in range(count)]


def answer_case(text):
    extracted = extract_answer(text)
    normalized, raised = normalize_answer(extracted)
    case = {"text": text, "extracted": extracted, "normalized": normalized}
    if raised:
        case["seed_raises"] = raised
    return case


def main():
    data_path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/gsm8k/test.jsonl"
    with open(data_path, encoding="utf-8") as f:
        answers = [json.loads(line)["answer"] for _, line in zip(range(200), f)]
    gsm8k = [answer_case(a) for a in answers]
    gsm8k += [answer_case(mangle(a, i)) for i, a in enumerate(answers)]

    normalize_only = []
    for a in NORMALIZE_CASES:
        normalized, raised = normalize_answer(a)
        case = {"answer": a, "normalized": normalized}
        if raised:
            case["seed_raises"] = raised
        normalize_only.append(case)

    # Every code point str.lower() changes, space-separated (so the final-sigma context, which
    # needs a cased letter before the sigma, never applies), and a few it leaves alone.
    changed = [chr(cp) for cp in range(0x110000)
               if not 0xD800 <= cp < 0xE000 and chr(cp).lower() != chr(cp)]
    lower_text = " ".join(changed + ["a", "ß", "ς", "1", "\u212b", "\U0001E900"])
    metrics = {
        "generator": "tests/golden/eval/make_metric_goldens.py",
        "python": sys.version.split()[0],
        "cases": [answer_case(t) for t in TEXT_CASES + fuzz_texts(300)],
        "normalize": normalize_only,
        "gsm8k": gsm8k,
        "lower": {"text": lower_text, "lower": lower_text.lower()},
    }
    with open("tests/golden/eval/answer_metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, ensure_ascii=False, indent=0)
        f.write("\n")

    values = float_cases()
    parse_texts = NORMALIZE_CASES + [t for t in TEXT_CASES if len(t) < 40] + [
        repr(v) for v in values[:200]] + ["%.17g" % v for v in values[200:400]] + [
        "1" * 400, "0." + "0" * 400 + "1", "1e308", "1.8e308", "2e-324", "3e-324", "1e-400",
        "-1e-400", "1e99999999999999999999", "0e99999999999999999999", "0." + "0" * 30 + "1e31",
        "2.4703282292062328e-324", "2.4703282292062327e-324", "9007199254740993",
        "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124", "1_2_3.4_5e+0_1", "\x855", "\xa05", "\u30005", "5\u2028", "\x0b5\x0c", "\x1c5", "5\x1f",
    ]
    floats = {
        "generator": "tests/golden/eval/make_metric_goldens.py",
        "python": sys.version.split()[0],
        "repr": [[bits(v), repr(v)] for v in values],
        "int_repr": [[bits(v), int_repr(v)] for v in values],
        "parse": [[t, parse_float(t)] for t in parse_texts],
    }
    with open("tests/golden/eval/python_float.json", "w", encoding="utf-8") as f:
        json.dump(floats, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()

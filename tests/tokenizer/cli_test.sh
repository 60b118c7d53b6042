#!/bin/sh
# `smolengine tokenize` end to end on the committed tiny tokenizer.json: encode and decode one
# golden line (tests/golden/tokenizer/tiny/golden.json), and a bad line names stdin:LINE.
set -u
BIN="$1"
TOK="$2/tests/golden/tokenizer/tiny/tokenizer.json"
fail() { echo "FAIL: $*"; exit 1; }
got=$(printf '"h\303\251llo w\303\266rld"\n' | "$BIN" tokenize --model "$TOK" --jsonl) || fail "encode exited $?"
[ "$got" = "[73,129,104,380,80,268,129,116,83,398]" ] || fail "encode gave $got"
got=$(printf '[73,129,104,380,80,268,129,116,83,398]\n' | "$BIN" tokenize --model "$TOK" --jsonl --decode) || fail "decode exited $?"
want=$(printf '"h\303\251llo w\303\266rld"')
[ "$got" = "$want" ] || fail "decode gave $got"
err=$(printf '"ok"\n[1,\n' | "$BIN" tokenize --model "$TOK" --jsonl 2>&1 >/dev/null) && fail "bad line accepted"
echo "$err" | grep -q "stdin:2" || fail "error does not name stdin:2: $err"
echo "tokenize CLI OK"

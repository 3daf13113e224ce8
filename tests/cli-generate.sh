#!/bin/sh
# cli-generate.sh - the line-mode commands on the tiny model: one-shot
# prompts (argument and stdin), seeds, the plain chat, tokenize/render, and
# every bad input giving a clean message and the documented exit status.
# Run from the repository root.
Q=${QNEXT_BIN:-./qnext}
M=share/tiny
pass=0
fail=0
out=$(mktemp)
err=$(mktemp)
tmp=$(mktemp -d)

check() { # name, expected status, command...
	name=$1 want=$2
	shift 2
	"$@" >"$out" 2>"$err"
	got=$?
	if [ "$got" = "$want" ]; then
		pass=$((pass + 1)); echo "ok   $name"
	else
		fail=$((fail + 1)); echo "FAIL $name (exit $got, wanted $want)"; cat "$out" "$err"
	fi
}

has() { # name, file, text expected in it
	if grep -q -- "$3" "$2"; then pass=$((pass + 1)); else
		fail=$((fail + 1)); echo "FAIL $1: lacks '$3'"; cat "$2"; fi
}

check "one question" 0 $Q -m $M -p "What is 2+2?" --temp 0 --max-tokens 8
has "stats line" "$err" "prompt .* tokens"
has "stats decode" "$err" "decode .* tok/s (8 tokens)"
check "quiet" 0 $Q -m $M -p "Hi" --max-tokens 4 -q
[ ! -s "$err" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL -q printed:"; cat "$err"; }
check "prompt on stdin" 0 sh -c "echo 'Hello there' | $Q -m $M --max-tokens 4 --temp 0"
has "stdin prompt tokens" "$err" "prompt [0-9][0-9] tokens"
check "-p - reads stdin" 0 sh -c "echo 'Hello there' | $Q -m $M -p - --max-tokens 4"
$Q -m $M -p "Tell me" --temp 1 --seed 7 --max-tokens 12 --thinking -q >"$tmp/a" 2>&1
$Q -m $M -p "Tell me" --temp 1 --seed 7 --max-tokens 12 --thinking -q >"$tmp/b" 2>&1
$Q -m $M -p "Tell me" --temp 1 --seed 8 --max-tokens 12 --thinking -q >"$tmp/c" 2>&1
cmp -s "$tmp/a" "$tmp/b" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL same seed differs"; }
cmp -s "$tmp/a" "$tmp/c" && { fail=$((fail + 1)); echo "FAIL other seed same"; } || pass=$((pass + 1))
# No --seed (or --seed -1): a fresh seed per reply, shown in the stats line so
# the answer can be reproduced.  On a copy of the tiny model without an end
# token every run samples all 64 tokens (a run that ended at once would be
# as empty as the next), so two runs' texts colliding is vanishingly
# unlikely.  text: the reasoning and answer of a run, without the stats line.
mkdir "$tmp/endless"
cp $M/* "$tmp/endless/"
printf '{"eos_token_id": [100000], "temperature": 0.6, "top_k": 20, "top_p": 0.95}' \
	>"$tmp/endless/generation_config.json"
text() { # output file, seed arguments...
	f=$1
	shift
	$Q -m "$tmp/endless" -p "Tell me" --temp 1 --max-tokens 64 --thinking "$@" >"$f" 2>"$f.err"
	grep -a -v '^\[prompt ' "$f.err" >>"$f" # -a: random tokens can look binary
}
text "$tmp/r1"
text "$tmp/r2"
[ -s "$tmp/r1" ] && ! cmp -s "$tmp/r1" "$tmp/r2" && pass=$((pass + 1)) || {
	fail=$((fail + 1)); echo "FAIL two runs without --seed give the same text"; }
has "stats line names the seed" "$tmp/r1.err" ", seed [0-9][0-9]*\]$"
seed=$(sed -n 's/.*, seed \([0-9]*\)\]$/\1/p' "$tmp/r1.err")
text "$tmp/r3" --seed "$seed"
cmp -s "$tmp/r1" "$tmp/r3" && pass=$((pass + 1)) || {
	fail=$((fail + 1)); echo "FAIL --seed $seed (the printed seed) does not reproduce the text"; }
text "$tmp/r4" --seed 12345
text "$tmp/r5" --seed 12345
cmp -s "$tmp/r4" "$tmp/r5" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL --seed 12345 twice differs"; }
has "fixed seed in the stats line" "$tmp/r4.err" ", seed 12345\]$"
text "$tmp/r6" --seed -1
! cmp -s "$tmp/r1" "$tmp/r6" && has "--seed -1 is accepted" "$tmp/r6.err" ", seed [0-9][0-9]*\]$" || {
	fail=$((fail + 1)); echo "FAIL --seed -1 repeats the text"; cat "$tmp/r6.err"; }
check "largest seed" 0 $Q -m $M -p hi --max-tokens 2 --seed 9007199254740991
has "largest seed used" "$err" ", seed 9007199254740991\]"
check "seed below -1" 2 $Q -m $M -p hi --seed -2
has "seed range named" "$err" "\-\-seed: '-2' is not -1 (random) or an integer in \[0, 9007199254740991\]"
check "seed above 2^53-1" 2 $Q -m $M -p hi --seed 9007199254740992
check "seed not an integer" 2 $Q -m $M -p hi --seed 1.5
check "plain chat" 0 sh -c "printf 'hello\nand more\n/quit\n' | $Q chat --plain -m $M --max-tokens 3"
has "chat second turn reuses the first" "$err" "([1-9][0-9]* reused)"
check "tokenize" 0 sh -c "printf 'Hello world' | $Q tokenize -m share/qwen3-tokenizer"
has "tokenize ids" "$out" "^\[9707, 1879\]$"
printf '{"messages": [{"role": "user", "content": "Hi"}]}' >"$tmp/conv.json"
check "render" 0 sh -c "$Q render < $tmp/conv.json"
printf '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n' >"$tmp/want"
cmp -s "$out" "$tmp/want" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL render output"; cat "$out"; }

# Bad inputs.
check "empty prompt" 2 $Q -m $M -p ""
has "empty prompt message" "$err" "the prompt is empty"
check "prompt longer than --ctx" 1 $Q -m $M -p "a long enough question for sixteen" --ctx 16
has "ctx message" "$err" "does not fit the context of 16"
check "bad number" 2 $Q -m $M -p hi --temp hot
has "bad number message" "$err" "\-\-temp: 'hot' is not a number"
check "missing model dir" 1 $Q -m /nonexistent/model -p hi
has "missing dir named" "$err" "/nonexistent/model"
check "no model anywhere" 1 env -u QNEXT_MODEL -u HF_HUB_CACHE -u HF_HOME HOME="$tmp" $Q -p hi
has "download hint" "$err" "hf download Intel/Qwen3-Next-80B-A3B-Thinking-int4-mixed-AutoRound"
check "QNEXT_MODEL" 0 env QNEXT_MODEL=$M $Q -p hi --max-tokens 2 -q
mkdir -p "$tmp/hub/models--Intel--Qwen3-Next-80B-A3B-Thinking-int4-mixed-AutoRound/snapshots/abc" \
	"$tmp/hub/models--Intel--Qwen3-Next-80B-A3B-Thinking-int4-mixed-AutoRound/refs"
cp $M/* "$tmp/hub/models--Intel--Qwen3-Next-80B-A3B-Thinking-int4-mixed-AutoRound/snapshots/abc/"
printf abc >"$tmp/hub/models--Intel--Qwen3-Next-80B-A3B-Thinking-int4-mixed-AutoRound/refs/main"
check "Hugging Face cache" 0 env -u QNEXT_MODEL HF_HUB_CACHE="$tmp/hub" $Q -p hi --max-tokens 2 -q
mkdir "$tmp/bad"
cp $M/* "$tmp/bad/"
printf '{"model": {"type": "BPE", "vocab": {' >"$tmp/bad/tokenizer.json"
check "malformed tokenizer.json" 1 $Q -m "$tmp/bad" -p hi
has "malformed tokenizer named" "$err" "tokenizer.json"
sed 's/"Split"/"Metaspace"/' $M/tokenizer.json >"$tmp/bad/tokenizer.json"
check "unknown pre-tokenizer" 1 $Q -m "$tmp/bad" -p hi
has "pre-tokenizer named" "$err" "Metaspace"
check "bad messages file" 1 $Q -m $M --messages "$tmp/want"
has "messages file named" "$err" "$tmp/want"
check "unexpected argument" 2 $Q -m $M -p hi extra
check "help" 0 $Q --help
has "help synopsis" "$out" "qnext chat \[--plain\]"
rm -rf "$tmp" "$out" "$err"
echo "cli-generate: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/bin/sh
# cli-hostile.sh - broken and hostile model directories (issue 10): each is
# built from links to the tiny model with one file replaced, and qnext must
# answer with a one-line error naming the file and exit 1 (or, where the
# file is one it need not read, work), never hang (every run is under a
# timeout) and never crash.  Run from the repository root.
Q=${QNEXT_BIN:-./qnext}
T=share/tiny
. tests/model-lib.sh

# expect NAME WANT-STATUS TEXT COMMAND...: the command's status is WANT and,
# for a failure, its stderr is one line holding TEXT.  A run that takes 20 s
# has hung.
expect() {
	name=$1 want=$2 text=$3
	shift 3
	timeout 20 "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	got=$?
	lines=$(wc -l <"$tmp/err")
	if [ $got = 124 ]; then
		fail=$((fail + 1)); echo "FAIL $name: hung (killed after 20 s)"
	elif [ $got != "$want" ]; then
		fail=$((fail + 1)); echo "FAIL $name: exit $got, wanted $want"; cat "$tmp/err"
	elif [ "$want" != 0 ] && { [ "$lines" != 1 ] || ! grep -q -- "$text" "$tmp/err"; }; then
		fail=$((fail + 1)); echo "FAIL $name: wanted one line with '$text'"; cat "$tmp/err"
	elif grep -q "Sanitizer" "$tmp/err"; then
		fail=$((fail + 1)); echo "FAIL $name: sanitizer report"; cat "$tmp/err"
	else
		pass=$((pass + 1)); echo "ok   $name"
	fi
}

run() { # the command every case runs: load, one token
	expect "$1" "$2" "$3" $Q -m "$4" -p hi --max-tokens 1 -q
}

# FIFOs: refused at once (no writer ever comes), not waited on.
for f in config.json model.safetensors.index.json tokenizer.json tokenizer_config.json \
	generation_config.json quantization_config.json model-00001-of-00002.safetensors; do
	d=$(copy "fifo-$f")
	rm "$d/$f"
	mkfifo "$d/$f"
	run "a FIFO as $f" 1 "$f: not a regular file" "$d"
done
# A FIFO named like a shard that the index does not list is not needed.
d=$(copy fifo-extra)
mkfifo "$d/model-00003-of-00003.safetensors"
run "a FIFO beside the shards, not in the index" 0 "" "$d"

# Device files and directories: refused by name, never read.
for f in config.json tokenizer.json model-00002-of-00002.safetensors; do
	d=$(copy "zero-$f")
	ln -sf /dev/zero "$d/$f"
	run "$f -> /dev/zero" 1 "$f: not a regular file" "$d"
done
d=$(copy dir-config)
rm "$d/config.json"
mkdir "$d/config.json"
run "config.json a directory" 1 "config.json: not a regular file" "$d"

# Sizes: a config of more than 16 MiB is not a config.
d=$(copy big-config)
rm "$d/config.json"
head -c $((17 << 20)) /dev/zero | tr '\0' ' ' >"$d/config.json"
run "a 17 MiB config.json" 1 "config.json: larger than" "$d"

# More experts than one step of the forward pass can queue: refused when the
# context is made, not aborted in the middle of the first prompt.
$Q mkmodel -o "$tmp/e600" --experts 600 --layers 1 --hidden 128 --vocab 1000 >/dev/null 2>&1
expect "600 experts" 1 "num_experts 600 is more than qnext handles" \
	$Q verify --model "$tmp/e600" --self --tokens 4

# Standard input: a NUL byte in the prompt is an error, not a cut.
printf 'hi\000there' >"$tmp/nul"
expect "a NUL in -p - input" 1 "NUL byte" sh -c "$Q -m $T -p - --max-tokens 1 -q <$tmp/nul"

# Numbers on the command line: nan and inf pass every range test unless
# refused, fractions are not counts (exit 2, the option named).
for a in "--ctx nan" "-t nan" "-n nan" "--top-k nan" "--seed nan" "--temp nan" \
	"--top-p inf" "--min-p nan" "--ctx 4096.5" "-n 1e3"; do
	$Q -m $T -p hi $a >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ $got = 2 ] && grep -q -- "'${a#* }' is not" "$tmp/err"; then
		pass=$((pass + 1)); echo "ok   $a refused"
	else
		fail=$((fail + 1)); echo "FAIL $a: exit $got"; head -2 "$tmp/err"
	fi
done
for c in "verify --model $T --self --tol nan" "verify --model $T --self --min-top1 nan" \
	"bench -m $T --prompt nan" "bench -m $T --reps 1.5" "mkmodel -o $tmp/x --layers nan"; do
	$Q $c >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ $got = 2 ] && grep -q "'[0-9a-z.]*' is not" "$tmp/err"; then
		pass=$((pass + 1)); echo "ok   qnext $c refused"
	else
		fail=$((fail + 1)); echo "FAIL qnext $c: exit $got"; head -2 "$tmp/err"
	fi
done

# A shard that shrinks while mapped: the step that reads the lost pages
# fails with a one-line error (exit 1), not SIGBUS (exit 135).  The copy
# never ends its answer, so the truncation lands mid-answer.
d=$tmp/shrink
mkdir "$d"
cp "$T"/* "$d/"
printf '{"eos_token_id": [100000]}' >"$d/generation_config.json"
timeout 60 $Q -m "$d" -p hi --max-tokens 1000000 -q >"$tmp/out" 2>"$tmp/err" </dev/null &
pid=$!
# Truncate once the answer has begun (its tokens are flushed one by one):
# a fixed sleep lost the race under ASan on a slow host.
i=0
while [ ! -s "$tmp/out" ] && [ $i -lt 400 ]; do sleep 0.1; i=$((i + 1)); done
truncate -s 1000000 "$d/model-00002-of-00002.safetensors"
wait $pid
got=$?
if [ $got = 1 ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q "changed or shrank" "$tmp/err" &&
	[ -s "$tmp/out" ]; then
	pass=$((pass + 1)); echo "ok   a shard shrinking mid-answer"
else
	fail=$((fail + 1)); echo "FAIL a shard shrinking mid-answer: exit $got"; cat "$tmp/err"
fi

echo "cli-hostile: $pass passed, $fail failed"
[ "$fail" = 0 ]

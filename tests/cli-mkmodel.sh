#!/bin/sh
# cli-mkmodel.sh - `qnext mkmodel` writes a checkpoint in the real layout
# that loads, plans, benchmarks and is self-consistent under `qnext verify
# --self` (whole prompt vs one token at a time vs uneven chunks).
Q=${QNEXT_BIN:-./qnext}
pass=0
fail=0
tmp=$(mktemp -d)
out="$tmp/out"

check() { # name, expected status, command...
	name=$1 want=$2
	shift 2
	"$@" >"$out" 2>&1
	got=$?
	if [ "$got" = "$want" ]; then pass=$((pass + 1)); echo "ok   $name"; else
		fail=$((fail + 1)); echo "FAIL $name (exit $got, wanted $want)"; cat "$out"; fi
}

has() {
	if grep -q -- "$2" "$out"; then pass=$((pass + 1)); else
		fail=$((fail + 1)); echo "FAIL $1: lacks '$2'"; cat "$out"; fi
}

check "mkmodel --tiny in 3 shards" 0 $Q mkmodel -o "$tmp/m" --tiny --shard-gb 0.002
has "three shards written" "in 3 shard(s)"
[ -f "$tmp/m/model.safetensors.index.json" ] && [ -f "$tmp/m/model-00003-of-00003.safetensors" ] \
	&& pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL shard files"; }
check "plan reads the layout" 0 $Q plan -m "$tmp/m"
has "experts int4" "routed experts   int4 g128"
has "DeltaNet int8" "DeltaNet proj.   int8 g128"
check "self-consistent, float32 path" 0 $Q verify --model "$tmp/m" --self --f32 --tokens 100
has "three schedules compared" "chunks 1,5,64,65,rest"
check "self-consistent, int8 path" 0 $Q verify --model "$tmp/m" --self --tokens 100 --tol 1e-2
check "bench runs on it" 0 $Q bench -m "$tmp/m" --prompt 32 --gen 8 --reps 1 --json
has "bench JSON" '"decode_tok_s"'
check "bench --phases" 0 $Q bench -m "$tmp/m" --prompt 8 --gen 4 --reps 1 --phases
has "phase table" "^  experts  *[0-9.]*  *[0-9.]*%  *[0-9.]*  *[0-9.]*  *[0-9]*%$"
has "barriers per token" "parallel steps per token"
check "bench --context" 0 $Q bench -m "$tmp/m" --prompt 8 --gen 4 --reps 1 --context 300
has "context in the decode line" "4 tokens after 308 of context, 300 of them synthetic"
has "KV cache line" "^with KV cache .* MB per token"
check "bench --context, JSON" 0 $Q bench -m "$tmp/m" --prompt 8 --gen 4 --reps 1 --context 40 --json
has "context in the JSON" '"context_tokens": 40,'
check "bench --context negative" 2 $Q bench -m "$tmp/m" --prompt 8 --gen 4 --context -5
check "same seed, same bytes" 0 $Q mkmodel -o "$tmp/m2" --tiny --shard-gb 0.002
cmp -s "$tmp/m/model-00002-of-00003.safetensors" "$tmp/m2/model-00002-of-00003.safetensors" \
	&& pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL mkmodel is not deterministic"; }
check "bad option" 2 $Q mkmodel -o "$tmp/x" --experts 1
# Fewer experts than top-k names both values, not just the usage.
check "fewer experts than top-k" 2 $Q mkmodel -o "$tmp/x" --experts 8
has "experts and top-k named" "--experts 8 is fewer than the 10 experts each token is routed to"
check "fewer experts than --tiny's top-k" 2 $Q mkmodel -o "$tmp/x" --tiny --experts 2
has "tiny top-k named" "use at least 4"
check "not a number" 2 $Q mkmodel -o "$tmp/x" --layers many
has "option and value named" "--layers: 'many' is not an integer"
check "hidden off the group size" 2 $Q mkmodel -o "$tmp/x" --hidden 200
has "group size named" "--hidden 200 is not a multiple of the quantization group size 128"
check "no -o" 2 $Q mkmodel --tiny
has "-o named" "-o DIR is required"
[ ! -e "$tmp/x" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL a refused run wrote $tmp/x"; }
# An existing non-empty -o: refused without --force, files untouched.  With
# --force, nothing of the earlier checkpoint survives: an old 3-shard split,
# its index, a tokenizer for another vocabulary (which made every prompt fail
# with "token id 151644 out of range (vocabulary 1024)"), a stale manifest.
cp share/qwen3-tokenizer/tokenizer.json share/qwen3-tokenizer/tokenizer_config.json "$tmp/m/"
printf 'stale\n' >"$tmp/m/qnext-sha256.txt"
printf 'mine\n' >"$tmp/m/NOTES.txt"
cksum "$tmp/m"/* >"$tmp/before"
check "non-empty -o refused" 1 $Q mkmodel -o "$tmp/m" --tiny
has "--force suggested" "$tmp/m is not empty; --force replaces the checkpoint in it"
cksum "$tmp/m"/* | cmp -s - "$tmp/before" && pass=$((pass + 1)) || {
	fail=$((fail + 1)); echo "FAIL a refused run changed $tmp/m"; }
check "--force replaces the checkpoint" 0 $Q mkmodel -o "$tmp/m" --tiny --force
LC_ALL=C ls "$tmp/m" >"$tmp/files"
printf 'NOTES.txt\nconfig.json\ngeneration_config.json\nmodel.safetensors\nquantization_config.json\n' \
	| cmp -s - "$tmp/files" && pass=$((pass + 1)) || {
	fail=$((fail + 1)); echo "FAIL --force left or lost files:"; cat "$tmp/files"; }
check "the replaced checkpoint is self-consistent" 0 $Q verify --model "$tmp/m" --self --f32 --tokens 20
check "no stale tokenizer" 1 $Q -m "$tmp/m" -p hi --max-tokens 2
has "missing tokenizer named" "$tmp/m/tokenizer.json"
grep -q "out of range" "$out" && { fail=$((fail + 1)); echo "FAIL stale tokenizer used"; } \
	|| pass=$((pass + 1))
check "empty existing -o is fine" 0 sh -c "mkdir '$tmp/empty' && $Q mkmodel -o '$tmp/empty' --tiny"
check "-o a file" 1 $Q mkmodel -o "$tmp/files" --tiny
has "not a directory" "$tmp/files exists and is not a directory"
check "mkmodel --help" 0 $Q mkmodel --help
has "--force in the usage" "\[--force\]"
check "unwritable output" 1 $Q mkmodel -o /proc/qnext-model --tiny
# The cache commands: only small files live there, and verify catches damage.
export XDG_CACHE_HOME="$tmp/cache"
mkdir -p "$tmp/cache/qnext/manifests"
check "cache list on an empty cache" 0 $Q cache list
has "no weights cached" "no weights are cached"
printf '{"mem_gbs": 10}' >"$tmp/cache/qnext/hw.json"
printf '%064d  model.safetensors\n' 0 >"$tmp/cache/qnext/manifests/m.txt"
check "cache verify, good files" 0 $Q cache verify
printf 'garbage' >"$tmp/cache/qnext/manifests/m.txt"
check "cache verify, damaged manifest" 1 $Q cache verify
has "damaged file named" "BAD  manifests/m.txt"
check "cache clear" 0 $Q cache clear
[ ! -e "$tmp/cache/qnext/hw.json" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL clear"; }
check "cache usage error" 2 $Q cache frob
rm -rf "$tmp"
echo "cli-mkmodel: $pass passed, $fail failed"
[ "$fail" = 0 ]

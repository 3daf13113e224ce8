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
check "same seed, same bytes" 0 $Q mkmodel -o "$tmp/m2" --tiny --shard-gb 0.002
cmp -s "$tmp/m/model-00002-of-00003.safetensors" "$tmp/m2/model-00002-of-00003.safetensors" \
	&& pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL mkmodel is not deterministic"; }
check "bad option" 2 $Q mkmodel -o "$tmp/x" --experts 1
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

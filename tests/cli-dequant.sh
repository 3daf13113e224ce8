#!/bin/sh
# cli-dequant.sh - `qnext dequant` writes a float copy of a quantized
# checkpoint that computes what the original computes: an F32 copy of each
# golden model passes `qnext verify --f32` against the golden the original
# passes (dequantizing to float32 is exact), tighter than the default
# tolerance; BF16 and F16 copies load and keep the top-1 floor.  Then the
# layout of the copy (shards, index, config without quantization_config,
# tokenizer) and the refusals: missing model, non-empty -o, -o = -m, bad
# options.  Run from the repository root.
Q=${QNEXT_BIN:-./qnext}
pass=0
fail=0
tmp=$(mktemp -d)
out="$tmp/out"
export OPENBLAS_NUM_THREADS=1

check() { # name, expected status, command...
	name=$1 want=$2
	shift 2
	"$@" >"$out" 2>&1
	got=$?
	if [ "$got" = "$want" ]; then pass=$((pass + 1)); echo "ok   $name"; else
		fail=$((fail + 1)); echo "FAIL $name (exit $got, wanted $want)"; cat "$out"; fi
}

has() { # name, text expected in the last output
	if grep -q -- "$2" "$out"; then pass=$((pass + 1)); else
		fail=$((fail + 1)); echo "FAIL $1: output lacks '$2'"; cat "$out"; fi
}

lacks() { # name, text not expected in the last output
	if grep -q -- "$2" "$out"; then fail=$((fail + 1)); echo "FAIL $1: has '$2'"; cat "$out"
	else pass=$((pass + 1)); fi
}

for d in share/tiny tests/data/small; do
	m=${d##*/}
	g=$d/golden.safetensors
	check "$m: original passes the float32 check" 0 $Q verify --model $d --golden $g --f32
	check "$m: dequantize to f32" 0 $Q dequant -m $d -o "$tmp/$m-f32" --dtype f32
	has "$m: modules counted" "dequantizing [0-9]* modules to F32"
	has "$m: the copy loads as float" "experts f32, projections f32"
	check "$m: f32 copy passes the same check" 0 $Q verify --model "$tmp/$m-f32" --golden $g --f32
	check "$m: f32 copy within 1e-4 of the golden" 0 \
		$Q verify --model "$tmp/$m-f32" --golden $g --f32 --tol 1e-4
done

# Layout: 3+ shards with an index naming every tensor, no quantized tensor
# left, config.json without quantization_config, tokenizer copied.
check "tiny: bf16 in small shards" 0 $Q dequant -m share/tiny -o "$tmp/b" --shard-gb 0.005
has "several shards" "in [2-9] shard(s)"
[ -f "$tmp/b/model.safetensors.index.json" ] && [ -f "$tmp/b/model-00004-of-00004.safetensors" ] &&
	[ ! -e "$tmp/b/quantization_config.json" ] && [ ! -e "$tmp/b/model.safetensors" ] &&
	pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL shard files:"; ls "$tmp/b"; }
cmp -s share/tiny/tokenizer.json "$tmp/b/tokenizer.json" && pass=$((pass + 1)) ||
	{ fail=$((fail + 1)); echo "FAIL tokenizer.json not copied"; }
grep -q quantization_config "$tmp/b/config.json" && { fail=$((fail + 1)); echo "FAIL config"; } ||
	pass=$((pass + 1))
grep -q '"qweight\|\.qweight"\|\.qzeros"\|\.scales"' "$tmp/b/model.safetensors.index.json" &&
	{ fail=$((fail + 1)); echo "FAIL quantized tensors left in the index"; } || pass=$((pass + 1))
grep -q '"model.layers.0.mlp.experts.0.down_proj.weight": "model-0000' \
	"$tmp/b/model.safetensors.index.json" && pass=$((pass + 1)) ||
	{ fail=$((fail + 1)); echo "FAIL index lacks an expert weight"; }
check "bf16 copy: plan reads it" 0 $Q plan -m "$tmp/b"
has "experts bf16" "routed experts   bf16"
check "bf16 copy keeps the int8 path's top-1 floor" 0 \
	$Q verify --model "$tmp/b" --golden share/tiny/golden.safetensors --min-top1 0.8
check "tiny: f16" 0 $Q dequant -m share/tiny -o "$tmp/h" --dtype f16
check "f16 copy keeps the top-1 floor" 0 \
	$Q verify --model "$tmp/h" --golden share/tiny/golden.safetensors --min-top1 0.8
check "same input, same bytes" 0 $Q dequant -m share/tiny -o "$tmp/b2" --shard-gb 0.005
cmp -s "$tmp/b/model-00002-of-00004.safetensors" "$tmp/b2/model-00002-of-00004.safetensors" &&
	pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL dequant is not deterministic"; }

# Refusals, each naming what is wrong, writing nothing.
check "missing model" 1 $Q dequant -m "$tmp/nonexistent" -o "$tmp/x"
has "missing model named" "$tmp/nonexistent"
[ ! -e "$tmp/x" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL wrote $tmp/x"; }
check "nothing quantized" 1 $Q dequant -m "$tmp/tiny-f32" -o "$tmp/x"
has "nothing to dequantize" "no quantized (qweight) tensors"
printf 'mine\n' >"$tmp/b/NOTES.txt"
cksum "$tmp/b"/* >"$tmp/before"
check "non-empty -o refused" 1 $Q dequant -m share/tiny -o "$tmp/b"
has "--force suggested" "$tmp/b is not empty; --force replaces the checkpoint in it"
cksum "$tmp/b"/* | cmp -s - "$tmp/before" && pass=$((pass + 1)) || {
	fail=$((fail + 1)); echo "FAIL a refused run changed $tmp/b"; }
check "--force replaces it" 0 $Q dequant -m share/tiny -o "$tmp/b" --force
LC_ALL=C ls "$tmp/b" >"$tmp/files"
printf 'NOTES.txt\nconfig.json\ngeneration_config.json\nmodel.safetensors\ntokenizer.json\ntokenizer_config.json\n' |
	cmp -s - "$tmp/files" && pass=$((pass + 1)) || {
	fail=$((fail + 1)); echo "FAIL --force left or lost files:"; cat "$tmp/files"; }
mkdir "$tmp/own" && cp share/tiny/* "$tmp/own/"
check "-o the model's own directory" 1 $Q dequant -m "$tmp/own" -o "$tmp/own/" --force
has "own directory named" "is the model's own directory"
cmp -s share/tiny/model-00001-of-00002.safetensors "$tmp/own/model-00001-of-00002.safetensors" &&
	pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL the model was changed"; }
check "-o a file" 1 $Q dequant -m share/tiny -o "$tmp/files"
has "not a directory" "$tmp/files exists and is not a directory"
check "unwritable output" 1 $Q dequant -m share/tiny -o /proc/qnext-dequant
has "output named" "/proc/qnext-dequant"
check "bad --dtype" 2 $Q dequant -m share/tiny -o "$tmp/y" --dtype q4
has "dtype named" "--dtype: 'q4' is not bf16, f16 or f32"
check "bad --shard-gb" 2 $Q dequant -m share/tiny -o "$tmp/y" --shard-gb 0
check "no -o" 2 $Q dequant -m share/tiny
has "-o named" "-o DIR is required"
check "no -m" 2 $Q dequant -o "$tmp/y"
has "-m named" "-m DIR is required"
check "stray argument" 2 $Q dequant -m share/tiny -o "$tmp/y" extra
[ ! -e "$tmp/y" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL wrote $tmp/y"; }
check "dequant --help" 0 $Q dequant --help
has "usage first" "^usage: qnext dequant -m DIR -o DIR"
has "--dtype described" "--dtype T"
lacks "not the global usage" "qnext mkmodel"
check "global --help lists it" 0 $Q --help
has "dequant in the global usage" "qnext dequant -m DIR -o DIR"
rm -rf "$tmp"
echo "cli-dequant: $pass passed, $fail failed"
[ "$fail" = 0 ]

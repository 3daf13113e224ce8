#!/bin/sh
# cli-quantcfg.sh - loading follows the tensors, not quantization_config
# (issue 10, item 3).  Each case is tiny with config.json altered the way
# real uploads differ (overlapping regexes with the general one first,
# GPTQ-style `dynamic`, extra_config names under another prefix, a missing
# entry): the load must go on with one warning line naming the first
# disagreement, and the float32 path must still match the golden.  Run from
# the repository root.
Q=${QNEXT_BIN:-./qnext}
T=share/tiny
G=$T/golden.safetensors
. tests/model-lib.sh

# alter NAME SED-SCRIPT: links to tiny's files, config.json edited; prints the path.
alter() {
	d=$(copy "$1")
	rm "$d/config.json"
	sed "$2" "$T/config.json" >"$d/config.json"
	echo "$d"
}

# case NAME DIR TEXT: verify --f32 passes and stderr holds one note with TEXT.
case_() {
	timeout 60 $Q verify --model "$2" --golden $G --f32 >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ $got != 0 ]; then
		fail=$((fail + 1)); echo "FAIL $1: exit $got"; cat "$tmp/out" "$tmp/err"
	elif [ "$(wc -l <"$tmp/err")" != 1 ] || ! grep -q -- "$3" "$tmp/err"; then
		fail=$((fail + 1)); echo "FAIL $1: wanted one note with '$3'"; cat "$tmp/err"
	else
		pass=$((pass + 1)); echo "ok   $1"
	fi
}

d=$(alter overlap 's/"extra_config": {/"extra_config": { ".*layers.*": {"bits": 8, "group_size": 64},/')
case_ "overlapping regex, the general one first" "$d" \
	"disagrees with the tensors for 192 modules (first: 'model.layers.0.mlp.experts.0.gate_proj' holds 4-bit weights, the config says 8)"

d=$(alter dynamic '/"extra_config": {/,/^    }/d
s/"sym": true,/"sym": true, "dynamic": {"-:.*lm_head": {}, "+:.*experts.*": {"bits": 4}}/')
case_ "GPTQ-style dynamic instead of extra_config" "$d" \
	"for 34 modules (first: 'model.embed_tokens' holds 8-bit weights, the config says 4)"

d=$(alter prefix 's/"model\.layers\./"model.language_model.layers./')
case_ "extra_config names under another prefix" "$d" "config says 4); using the tensors'"

d=$(alter missing '/"model.layers.2.linear_attn.out_proj": {/,/}/d')
case_ "one entry missing" "$d" \
	"for 1 module (first: 'model.layers.2.linear_attn.out_proj' holds 8-bit weights, the config says 4)"

d=$(alter float '/"model.layers.1.mlp.gate": {/,/}/d')
case_ "a float router the config calls quantized" "$d" \
	"'model.layers.1.mlp.gate' holds BF16 weights, the config says 4 bits"

d=$(alter groups 's/"group_size": 128,/"group_size": 64,/')
case_ "a group size the tensors do not have" "$d" "has groups of 128, the config says 64"

# The note reaches the user of the chat too.
timeout 60 $Q -m "$d" -p hi --max-tokens 1 -q >"$tmp/out" 2>"$tmp/err"
if grep -q "note: .*quantization_config disagrees" "$tmp/err"; then
	pass=$((pass + 1)); echo "ok   qnext -p prints the note"
else
	fail=$((fail + 1)); echo "FAIL qnext -p prints the note"; cat "$tmp/err"
fi

# The unaltered model loads without a note.
timeout 60 $Q verify --model $T --golden $G --f32 >"$tmp/out" 2>"$tmp/err"
if [ $? = 0 ] && [ ! -s "$tmp/err" ]; then
	pass=$((pass + 1)); echo "ok   tiny itself: no note"
else
	fail=$((fail + 1)); echo "FAIL tiny itself: no note"; cat "$tmp/err"
fi

echo "cli-quantcfg: $pass passed, $fail failed"
[ $fail = 0 ]

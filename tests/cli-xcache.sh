#!/bin/sh
# cli-xcache.sh - the expert cache and skewed routing from the command line:
# --expert-cache parses its values and refuses others with a one-line error;
# a reply with a cache of a few experts is the same text as without one (same
# seed); bench reports the cache and the routing; mkmodel --router-skew makes
# each layer's most chosen tenth of the experts take several times its share
# (measured by bench), while --router-skew 0 stays near uniform.
# Run from the repository root.
Q=${QNEXT_BIN:-./qnext}
pass=0
fail=0
out=$(mktemp)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$out"' EXIT

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; cat "$out"; }

# Bad values: exit 2, one line naming the value.
$Q -m share/tiny -p hi --expert-cache lots >"$out" 2>&1
[ $? = 2 ] && grep -q "expert-cache 'lots'" "$out" && ok "bad size refused" || bad "bad size"
$Q -m share/tiny -p hi --expert-cache 12 >"$out" 2>&1
[ $? = 2 ] && ok "size without unit refused" || bad "size without unit"
$Q bench -m share/tiny --expert-cache -1G >"$out" 2>&1
[ $? = 2 ] && ok "bench: negative size refused" || bad "bench negative size"

# The same answer with the experts read through a small cache.
a=$($Q -m share/tiny -p "Hello there" --seed 7 --max-tokens 24 -q --thinking --expert-cache off 2>&1)
b=$($Q -m share/tiny -p "Hello there" --seed 7 --max-tokens 24 -q --thinking --expert-cache 600K 2>&1)
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok "same reply with a 600K cache"; else
	echo "off:   $a" >"$out"; echo "cache: $b" >>"$out"; bad "reply differs with the cache"; fi

# A cache too small for two experts: a clear error, not a crash.
$Q -m share/tiny -p hi --max-tokens 2 -q --expert-cache 1K >"$out" 2>&1
[ $? = 1 ] && grep -q "fewer than two experts" "$out" && ok "too small refused" \
	|| bad "too small"

$Q bench -m tests/data/small --prompt 8 --gen 8 --reps 1 --expert-cache 2M >"$out" 2>&1
if [ $? = 0 ] && grep -q "^expert cache" "$out" && grep -q "^  decode .*% hits" "$out" &&
	grep -q "^routing" "$out"; then ok "bench reports cache and routing"; else
	bad "bench cache lines"; fi
$Q bench -m tests/data/small --prompt 8 --gen 8 --reps 1 --expert-cache 2M --json >"$out" 2>&1
grep -q '"expert_cache_slots": [1-9]' "$out" && ok "bench --json cache fields" \
	|| bad "bench --json"
$Q bench -m tests/data/small --prompt 8 --gen 8 --reps 1 >"$out" 2>&1
grep -q "^expert cache" "$out" && bad "auto made a cache for a model that fits" \
	|| ok "auto: no cache when the model fits"

# Skewed routing: 64 experts, top 10, small widths.
share() { # dir -> percent of choices to the most chosen tenth
	$Q bench -m "$1" --prompt 32 --gen 32 --reps 1 --expert-cache off 2>/dev/null |
		sed -n 's/^routing *\([0-9.]*\)%.*/\1/p'
}
for s in 0 1.5; do
	if ! $Q mkmodel -o "$tmp/s$s" --experts 64 --layers 4 --hidden 256 --vocab 2048 \
		--router-skew $s --tokenizer share/tiny >"$out" 2>&1; then
		bad "mkmodel --router-skew $s"
	fi
done
u=$(share "$tmp/s0")
k=$(share "$tmp/s1.5")
echo "most chosen tenth: uniform ${u}%, skew 1.5 ${k}%"
# Uniform: about 6 of 64 experts should take about 10 %; skewed, several times that.
awk -v u="$u" -v k="$k" 'BEGIN { exit !(u > 5 && u < 20 && k > 2.5 * u) }' &&
	ok "router skew concentrates the choices" || { echo "u=$u k=$k" >"$out"; bad "skew"; }
$Q mkmodel -o "$tmp/bad" --tiny --router-skew much >"$out" 2>&1
[ $? = 2 ] && grep -q "router-skew" "$out" && ok "bad skew refused" || bad "bad skew"

echo "cli-xcache: $pass passed, $fail failed"
[ "$fail" = 0 ]

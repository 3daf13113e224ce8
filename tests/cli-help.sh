#!/bin/sh
# cli-help.sh - every subcommand's --help describes that subcommand and its
# own options (exit 0, on stdout, nothing on stderr), not the global usage;
# a bad option prints the same usage on stderr and exits 2.
# Run from the repository root.
Q=${QNEXT_BIN:-./qnext}
pass=0
fail=0
tmp=$(mktemp -d)

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/  | /' "$tmp/out" "$tmp/err"; }

# help NAME OPTION... : `qnext NAME --help` names each OPTION and no other command.
help() {
	name=$1
	shift
	$Q $name --help >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc != 0 ] || [ -s "$tmp/err" ]; then bad "$name --help (exit $rc)"; return; fi
	if ! head -1 "$tmp/out" | grep -q "^usage: qnext $name"; then
		bad "$name --help starts with its own usage"; return; fi
	# The global usage lists every command; a subcommand's help names no other.
	if grep -q "qnext bench-hw\|qnext mkmodel" "$tmp/out"; then
		bad "$name --help prints the global usage"; return; fi
	for opt in "$@"; do
		grep -q -- "$opt" "$tmp/out" || { bad "$name --help lacks '$opt'"; return; }
	done
	[ "$(wc -l <"$tmp/out")" -ge 3 ] || { bad "$name --help describes nothing"; return; }
	ok "$name --help"
	$Q $name --no-such-option >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc = 2 ] && grep -q "^usage: qnext $name" "$tmp/err" && [ ! -s "$tmp/out" ]; then
		ok "$name: a bad option prints its usage on stderr"
	else
		bad "$name --no-such-option (exit $rc)"
	fi
}

help chat --plain --model --system --temp --top-k --top-p --min-p --presence-penalty \
	--repeat-penalty --seed --max-tokens --ctx --threads --thinking --quiet --f32
help export --format --output
help tokenize --model
help render --model
help which-model --model
help list
help dequant --model --out --dtype --shard-gb --force
$Q --help >"$tmp/out" 2>"$tmp/err" && grep -q "qnext chat \[--plain\]" "$tmp/out" \
	&& ok "qnext --help is the global usage" || bad "qnext --help"
rm -rf "$tmp"
echo "cli-help: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/bin/sh
# cli-help.sh - every subcommand's --help describes that subcommand and its
# own options (exit 0, on stdout, nothing on stderr), not the global usage;
# a bad option prints the same usage on stderr and exits 2.  The forms
# --help prints (src/main.c's table) are the man page's SYNOPSIS, and each
# command's usage shows its own forms from the same table.
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

# forms FILE: the usage forms in FILE (`qnext --help`, or the man page's
# SYNOPSIS rendered), one per line, continuation lines joined, compared
# without case (the man page writes "dir" for DIR) and without spaces
# around '|' (it writes "auto | off").
forms() {
	awk '/^(usage: )? *qnext( |$)/ { if (f != "") print f; f = $0; next }
	     /^      / && f != "" { f = f " " $0; next }
	     { if (f != "") print f; f = "" }
	     END { if (f != "") print f }' "$1" |
		sed 's/^usage: //; s/  */ /g; s/^ //; s/ *| */|/g; s/ $//' | tr 'A-Z' 'a-z' | sort
}
$Q --help >"$tmp/help" 2>"$tmp/err"
forms "$tmp/help" >"$tmp/help-forms"
if ! command -v groff >/dev/null; then
	echo "cli-help: groff missing (make deps installs groff-base)" >"$tmp/out"
	: >"$tmp/err"
	bad "man page SYNOPSIS"
else
	LC_ALL=C.UTF-8 groff -mdoc -Tutf8 -P-cbou man/qnext.1 2>/dev/null |
		sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' >"$tmp/man"
	forms "$tmp/man" >"$tmp/man-forms"
	if [ "$(wc -l <"$tmp/help-forms")" -ge 15 ] &&
		diff "$tmp/help-forms" "$tmp/man-forms" >"$tmp/out" 2>"$tmp/err"; then
		ok "the man page's SYNOPSIS has the forms of qnext --help, no more, no fewer"
	else
		bad "man page SYNOPSIS differs from qnext --help (< --help, > man)"
	fi
fi
# Each command's usage message is its own forms from the table, all of them.
for name in $(awk '$1 == "qnext" && $2 ~ /^[a-z]/ { print $2 }' "$tmp/help-forms" | uniq); do
	$Q $name --no-such-option >/dev/null 2>"$tmp/err"
	forms "$tmp/err" >"$tmp/cmd-forms"
	grep "^qnext $name " "$tmp/help-forms" >"$tmp/want"
	grep -x "qnext $name" "$tmp/help-forms" >>"$tmp/want"
	sort -o "$tmp/want" "$tmp/want"
	if [ -s "$tmp/cmd-forms" ] && diff "$tmp/want" "$tmp/cmd-forms" >"$tmp/out"; then
		ok "$name: its usage error shows its forms of qnext --help"
	else
		bad "$name: usage error forms differ from qnext --help (< --help, > $name)"
	fi
done
rm -rf "$tmp"
echo "cli-help: $pass passed, $fail failed"
[ "$fail" = 0 ]

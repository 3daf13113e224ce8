#!/bin/sh
# cli-think-budget.sh - `qnext -p --think-budget N`: the tiny model, which
# reasons past any small token limit on its own, answers on stdout once its
# N reasoning tokens are spent (the reasoning, on stderr with --thinking, is
# those N tokens' text); without a budget the same reply is all reasoning;
# a budget that is not a whole number >= 0 is refused; with --remote against
# qnext serve the budget is sent and kept as well.  Run from the
# repository root; QNEXT_BIN names the binary.
Q=${QNEXT_BIN:-./qnext}
M=share/tiny
pass=0
fail=0
tmp=$(mktemp -d)

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

run() { # budget: the reply to "Hi", greedy, 12 tokens at most
	$Q -m $M -p Hi --temp 0 --max-tokens 12 --thinking -q --think-budget "$1" \
		>"$tmp/out" 2>"$tmp/err"
}

run 0 && [ ! -s "$tmp/out" ] && [ -s "$tmp/err" ] && ok "no budget: all reasoning" ||
	bad "no budget: all reasoning (stdout: $(cat "$tmp/out"))"
cp "$tmp/err" "$tmp/err0"
if run 3 && [ -s "$tmp/out" ]; then ok "budget 3: an answer"; else bad "budget 3: an answer"; fi
# The reasoning is the first 3 tokens' text: a prefix of the unlimited one.
r3=$(cat "$tmp/err")
r0=$(cat "$tmp/err0")
case "$r0" in
"$r3"*) [ ${#r3} -lt ${#r0} ] && ok "budget 3: reasoning cut short" ||
	bad "budget 3: reasoning cut short" ;;
*) bad "budget 3: reasoning is a prefix ('$r3' / '$r0')" ;;
esac
$Q -m $M -p Hi --think-budget -1 >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q "think-budget" "$tmp/err" && ok "budget -1 refused" || bad "budget -1 refused"

# The same through --remote against qnext serve: the budget travels as thinking_token_budget.
$Q serve -m $M --port 0 -q >"$tmp/serve.out" 2>"$tmp/serve.err" &
spid=$!
port=""
for _ in $(seq 100); do
	port=$(sed -n 's|.*http://[^ ]*:\([0-9][0-9]*\)/v1.*|\1|p' "$tmp/serve.out")
	[ -n "$port" ] && break
	sleep 0.1
done
rrun() { # budget
	$Q --remote "http://127.0.0.1:$port/v1" -p Hi --temp 0 --max-tokens 12 --thinking -q \
		--think-budget "$1" >"$tmp/out" 2>"$tmp/err"
}
if [ -z "$port" ]; then
	bad "qnext serve starts: $(cat "$tmp/serve.err")"
else
	rrun 0 && [ ! -s "$tmp/out" ] && [ -s "$tmp/err" ] && ok "remote, no budget: all reasoning" ||
		bad "remote, no budget (stdout: $(cat "$tmp/out"))"
	rrun 3 && [ -s "$tmp/out" ] && [ "$(cat "$tmp/err")" = "$r3" ] &&
		ok "remote, budget 3: the same reasoning, then an answer" ||
		bad "remote, budget 3 (stdout: '$(cat "$tmp/out")', reasoning '$(cat "$tmp/err")')"
fi
kill $spid 2>/dev/null

rm -rf "$tmp"
echo "cli-think-budget: $pass passed, $fail failed"
[ "$fail" = 0 ]

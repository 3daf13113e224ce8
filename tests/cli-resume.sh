#!/bin/sh
# cli-resume.sh - saved engine states through the real binary (docs/resume.md):
# `qnext -p --messages` run twice in separate processes with the same
# XDG_CACHE_HOME reads the conversation from disk the second time ("(N reused)"
# with N most of the prompt) and answers the same; --state-cache off reads it
# all again and writes nothing; `qnext cache list|verify|clear` see the states,
# and verify finds a damaged one.  Run from the repository root.
Q=${QNEXT_BIN:-./qnext}
tmp=$(mktemp -d)
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
export XDG_CACHE_HOME="$tmp/cache" XDG_STATE_HOME="$tmp/state" XDG_DATA_HOME="$tmp/data"

python3 - "$tmp/conv.json" <<'PY'
import json, sys
turns = []
for i in range(6):
    turns.append({"role": "user", "content": "Question %d: tell me about rivers and lakes. " % i * 3})
    turns.append({"role": "assistant", "content": "Answer %d: water flows downhill. " % i * 3})
json.dump([{"role": "system", "content": "You answer briefly."}] + turns, open(sys.argv[1], "w"))
PY

run() { # name, extra args: the stats line of one -p reply into $tmp/NAME.err, answer into .out
	$Q -m share/tiny --messages "$tmp/conv.json" -p "And the sea?" -n 8 --seed 7 \
		--temp 0 $2 >"$tmp/$1.out" 2>"$tmp/$1.err"
}
reused() { sed -n 's/.*prompt \([0-9]*\) tokens (\([0-9]*\) reused).*/\2/p' "$tmp/$1.err" | tail -1; }
prompt() { sed -n 's/.*prompt \([0-9]*\) tokens (\([0-9]*\) reused).*/\1/p' "$tmp/$1.err" | tail -1; }

run first && ok "first run" || bad "first run: $(cat $tmp/first.err)"
[ "$(reused first)" = 0 ] && ok "first run reads the whole prompt" || bad "first run reused $(reused first)"
n=$(ls "$tmp/cache/qnext/state/"*.qsnap 2>/dev/null | wc -l)
[ "$n" = 1 ] && ok "one state saved" || bad "states saved: $n"
run second && ok "second run" || bad "second run: $(cat $tmp/second.err)"
r=$(reused second) p=$(prompt second)
[ -n "$r" ] && [ "$r" -gt 0 ] && [ $((r * 10)) -gt $((p * 9)) ] &&
	ok "second run reuses most of the prompt ($r of $p)" || bad "second run reused '$r' of '$p'"
cmp -s "$tmp/first.out" "$tmp/second.out" && ok "same answer" || bad "answers differ"

rm -rf "$tmp/cache"
run off "--state-cache off" && run off2 "--state-cache off"
[ "$(reused off2)" = 0 ] && ok "--state-cache off reads it again" || bad "off reused $(reused off2)"
[ ! -d "$tmp/cache/qnext/state" ] || [ -z "$(ls "$tmp/cache/qnext/state")" ] &&
	ok "--state-cache off writes nothing" || bad "--state-cache off wrote states"
$Q -m share/tiny -p hi --state-cache lots >/dev/null 2>"$tmp/bad.err"
[ $? = 2 ] && grep -q "state-cache 'lots'" "$tmp/bad.err" && ok "bad --state-cache refused" ||
	bad "bad --state-cache: $(cat $tmp/bad.err)"

# A budget smaller than one state: nothing is written, the reply is unharmed.
run tiny "--state-cache 1K" && [ -z "$(ls "$tmp/cache/qnext/state" 2>/dev/null)" ] &&
	ok "a state over the budget is not written" || bad "1K budget"

run again && $Q cache list >"$tmp/list" && grep -q "state/.*\.qsnap" "$tmp/list" &&
	ok "cache list shows the state" || bad "cache list: $(cat $tmp/list)"
$Q cache verify >"$tmp/verify" && grep -q "^ok   state/" "$tmp/verify" && ok "cache verify: ok" ||
	bad "cache verify: $(cat $tmp/verify)"
f=$(ls "$tmp/cache/qnext/state/"*.qsnap | head -1)
printf 'X' | dd of="$f" bs=1 seek=1000 conv=notrunc 2>/dev/null
$Q cache verify >"$tmp/verify2"
[ $? = 1 ] && grep -q "^BAD  state/" "$tmp/verify2" && ok "cache verify finds a damaged state" ||
	bad "cache verify damaged: $(cat $tmp/verify2)"
run damaged && [ "$(reused damaged)" = 0 ] && cmp -s "$tmp/first.out" "$tmp/damaged.out" &&
	ok "a damaged state is passed over: full prefill, same answer" ||
	bad "damaged state: reused $(reused damaged)"
$Q cache clear >/dev/null && [ -z "$(ls "$tmp/cache/qnext/state" 2>/dev/null)" ] &&
	ok "cache clear removes the states" || bad "cache clear"

rm -rf "$tmp"
echo "cli-resume: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/bin/sh
# cli-tui-context.sh - keeping a conversation inside the context
# (docs/ui.md "Context management"), in tmux on the tiny model's copy that
# never ends its turn: /continue goes on with an answer cut off by
# --max-tokens in the same entry, and the store then holds the whole answer;
# past 90% of a small --ctx the chat warns once; a message that no longer
# fits says what to do; /drop N lets it through; /compact starts a new chat
# whose system prompt holds the summary the model wrote.  Run from the
# repository root; QNEXT_BIN names the binary.
. tests/tui-lib.sh

# answered TEXT: until the answer to the question TEXT shows its end.
answered() {
	i=0
	while [ $i -lt 300 ]; do
		screen | sed -n "/^  $1\$/,\$p" | grep -q -- "- token limit\|- context full" &&
			return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# export_field ID EXPR: a Python expression over the exported conversation `c`.
export_field() {
	$Q export "$1" --format json >"$tmp/conv.json" 2>/dev/null &&
		python3 -c "import json; c = json.load(open('$tmp/conv.json')); print($2)"
}

# /continue: the same entry grows, the token count with it, the store follows.
start "$tmp/endless" "--max-tokens 8 --think-budget 3 --seed 5"
wait_for "ready in" 300
send_line "/continue"
expect "/continue with nothing to continue" "/continue: the last entry is not an answer"
send_line "Hi"
expect "cut off at 8 tokens" "8 tokens, .* token limit"
first=$(export_field 1 "c['messages'][1]['content']")
send_line "/continue"
expect "/continue: 16 tokens in the same entry" "16 tokens (continued)"
n=$(screen | grep -c "^qnext$")
[ "$n" = 1 ] && ok "/continue: one answer entry" || bad "/continue: one answer entry ($n)"
msgs=$(export_field 1 "len(c['messages'])")
whole=$(export_field 1 "c['messages'][1]['content']")
toks=$(export_field 1 "c['messages'][1]['usage']['output_tokens']")
case "$whole" in
"$first"?*) ok "/continue: the stored answer is the first part and more" ;;
*) bad "/continue: the stored answer grew ('$first' -> '$whole')" ;;
esac
[ "$msgs" = 2 ] && [ "$toks" = 16 ] && ok "/continue: stored once, 16 tokens" ||
	bad "/continue: stored once, 16 tokens ($msgs messages, $toks tokens)"
quit_ok "/continue: quit"

# A context of 256: the warning, the error that says what to do, /drop, /compact.
fresh_history ctx
start "$tmp/endless" "--ctx 256 --max-tokens 60 --think-budget 3 --seed 5"
wait_for "ready in" 300
for q in one two three; do
	send_line "$q"
	answered "$q" || bad "answer to $q"
done
expect "90% warning" "this chat fills 9[0-9]% of the context"
expect "90% warning: status row" "context 9[0-9]% full: /compact or /drop N"
send_line "four"
expect "too long: what to do" "does not fit the context of 256: /drop N"
n=$(screen | grep -c "this chat fills")
[ "$n" = 1 ] && ok "90% warning once" || bad "90% warning once ($n)"
send_line "/drop 2"
if answered four; then ok "/drop 2 lets the question through"; else bad "/drop 2 lets it through"; fi
send_line "/drop 1"
expect "/drop 1" "the 1 oldest turn is left out"
send_line "/compact"
expect "/compact: a new chat" "compacted: a new chat from a summary"
system=$(export_field 2 "c['system']")
msgs=$(export_field 2 "len(c['messages'])")
case "$system" in
"Summary of an earlier conversation:"?*) ok "/compact: the summary is the new chat's system prompt" ;;
*) bad "/compact: the summary is the new chat's system prompt ('$system')" ;;
esac
[ "$msgs" = 0 ] && ok "/compact: the new chat starts empty" || bad "/compact: new chat ($msgs)"
send_line "five"
if answered five; then ok "/compact: the new chat answers"; else bad "/compact: the new chat answers"; fi
quit_ok "context: quit"
finish

#!/bin/sh
# cli-thinking.sh - while the model reasons, line mode shows a live
# "thinking... N tokens, S s" line on stderr when stderr is a terminal:
# redrawn in place, erased before the answer is printed, never on stdout,
# and absent with -q, --thinking, TERM=dumb or a stderr that is not a
# terminal.  script(1) provides the terminal.  Run from the repository root.
Q=$(cd "$(dirname "${QNEXT_BIN:-./qnext}")" && pwd)/$(basename "${QNEXT_BIN:-./qnext}")
command -v script >/dev/null || { echo "cli-thinking: script(1) missing (bsdutils)"; \
	echo "cli-thinking: 0 passed, 1 failed"; exit 1; }
export LC_ALL=C
M=share/tiny
pass=0
fail=0
tmp=$(mktemp -d)
esc=$(printf '\033')

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# on_tty LOG COMMAND: run the shell COMMAND on a pseudo-terminal; all it
# writes to the terminal is kept in LOG.
on_tty() {
	log=$1
	shift
	TERM=xterm script -qec "$*" "$log" </dev/null >/dev/null 2>&1
}

# A seed whose answer is not empty (the tiny model's random weights often
# reason until the token limit), found without a terminal.
seed=
for s in 3 1 2 4 5 6 7 8 9 10 11 12 13 14 15 16 21 25 29 30 36 38 39 42 51 59; do
	$Q -m $M -p "Tell me" --seed $s --max-tokens 400 >"$tmp/plain" 2>"$tmp/plain.err"
	[ -s "$tmp/plain" ] && { seed=$s; break; }
done
[ -n "$seed" ] && ok "a seed with an answer ($seed)" || bad "no seed in the list gives an answer"
grep -q "thinking\.\.\." "$tmp/plain.err" && bad "indicator on a stderr that is not a terminal" \
	|| ok "no indicator when stderr is not a terminal"
run="$Q -m $M -p 'Tell me' --seed $seed --max-tokens 400"

# stderr on the terminal, stdout to a file: the file holds the answer alone.
on_tty "$tmp/log1" "$run >$tmp/out1"
cmp -s "$tmp/out1" "$tmp/plain" && ok "stdout holds only the answer" || bad "stdout differs"
grep -q "thinking\.\.\. [0-9]* tokens\{0,1\}, [0-9.]* s" "$tmp/log1" && ok "indicator shown" \
	|| { bad "no indicator on the terminal"; cat -v "$tmp/log1"; }
tr '\r' '\n' <"$tmp/log1" | grep -q "^$esc\[K\[prompt " && ok "erased before the stats line" \
	|| { bad "indicator not erased"; cat -v "$tmp/log1"; }

# Both on the terminal: the indicator is erased right before the answer and
# not drawn again.
on_tty "$tmp/log2" "$run"
prefix=$(head -1 "$tmp/plain" | head -c 12)
tr '\r' '\n' <"$tmp/log2" >"$tmp/lines2"
# -a: the tiny model's random answer can hold NUL bytes, which make grep call it binary.
first=$(grep -a -n -F "$esc[K$prefix" "$tmp/lines2" | head -1 | cut -d: -f1)
last=$(grep -a -n "thinking\.\.\." "$tmp/lines2" | tail -1 | cut -d: -f1)
[ -n "$first" ] && [ -n "$last" ] && [ "$last" -lt "$first" ] && ok "erased before the answer" \
	|| { bad "answer not right after the erased indicator ($last, $first)"; cat -v "$tmp/log2"; }

# Redrawn in place: a copy of the model that reasons until stopped (no end
# token, and its </think> token renamed), stopped by Ctrl-C after 1.5 s.
mkdir "$tmp/endless"
cp $M/* "$tmp/endless/"
printf '{"eos_token_id": [100000], "temperature": 0.6, "top_k": 20, "top_p": 0.95}' \
	>"$tmp/endless/generation_config.json"
sed 's#"content": *"</think>"#"content": "</thonk>"#' $M/tokenizer.json >"$tmp/endless/tokenizer.json"
on_tty "$tmp/log3" "timeout -s INT 1.5 $Q -m $tmp/endless -p 'Go on' --max-tokens 1000000 >$tmp/out3"
[ ! -s "$tmp/out3" ] && ok "the endless copy only reasons" || bad "the endless copy answered"
n=$(tr '\r' '\n' <"$tmp/log3" | grep -a -o "thinking\.\.\. [0-9]*" | sort -u | wc -l)
[ "$n" -ge 2 ] && ok "count updated ($n values)" || { bad "count not updated"; cat -v "$tmp/log3"; }
[ "$(grep -c "thinking" "$tmp/log3")" = 1 ] && ok "updated in place (no newlines)" \
	|| { bad "the indicator scrolls"; cat -v "$tmp/log3"; }
grep -q "\[prompt .*, stopped, seed [0-9]*\]" "$tmp/log3" && ok "Ctrl-C still ends with the stats" \
	|| { bad "no stats after Ctrl-C"; cat -v "$tmp/log3"; }

# Off with -q, with --thinking (the reasoning shows instead), on a dumb terminal.
off() { # name, command
	on_tty "$tmp/log" "$2"
	grep -q "thinking\.\.\. [0-9]" "$tmp/log" && { bad "indicator $1"; cat -v "$tmp/log"; } \
		|| ok "no indicator $1"
}
off "with -q" "$run -q"
off "with --thinking" "$run --thinking"
off "on a dumb terminal" "TERM=dumb $run"
rm -rf "$tmp"
echo "cli-thinking: $pass passed, $fail failed"
[ "$fail" = 0 ]

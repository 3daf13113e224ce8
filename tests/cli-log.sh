#!/bin/sh
# cli-log.sh - the bug-report log: QNEXT_LOG and -v write it, each line says
# which thread wrote it, a reply's figures are there and its text is not, a
# bad QNEXT_LOG is named and the answer still comes.  The full-screen chat
# runs in a private tmux server on the tiny model.  Run from the repository root.
. tests/tui-lib.sh
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/  | /' "$2" 2>/dev/null; }

# One question with QNEXT_LOG=info:FILE.
QNEXT_LOG="info:$tmp/p.log" "$Q" -m share/tiny -p "zebra crossing" -n 4 -q >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 0 ] && ok "-p with QNEXT_LOG exits 0" || bad "-p with QNEXT_LOG (exit $rc)" "$tmp/err"
for l in "main info: log opened at level info" "main info: pool: " \
	"main info: reply: [0-9]* prompt tokens" "main info: exit status 0"; do
	grep -q "^20[0-9-]*T[0-9:.]*Z $l" "$tmp/p.log" && ok "-p log has '$l'" \
		|| bad "-p log lacks '$l'" "$tmp/p.log"
done
grep -q zebra "$tmp/p.log" && bad "the question's text is in the log" "$tmp/p.log" \
	|| ok "the question's text is not in the log"

# -v: the default file under XDG_STATE_HOME, said on stderr.
"$Q" -v -m share/tiny -p "hello" -n 2 -q >"$tmp/out" 2>"$tmp/err"
grep -q "logging to $tmp/state/qnext/qnext.log" "$tmp/err" \
	&& grep -q "main info: reply: " "$tmp/state/qnext/qnext.log" \
	&& ok "-v logs to \$XDG_STATE_HOME/qnext/qnext.log" || bad "-v" "$tmp/err"
grep -q "log opened at level info" "$tmp/state/qnext/qnext.log" && ok "-v is level info" \
	|| bad "-v's level" "$tmp/state/qnext/qnext.log"
"$Q" -vv -m share/tiny -p "hello" -n 2 -q >"$tmp/out" 2>"$tmp/err"
grep -q "log opened at level debug" "$tmp/state/qnext/qnext.log" && ok "-vv is level debug" \
	|| bad "-vv's level" "$tmp/state/qnext/qnext.log"

# A bad QNEXT_LOG is named; the answer still comes.
QNEXT_LOG=loud "$Q" -m share/tiny -p "hello" -n 2 -q >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 0 ] && grep -q "QNEXT_LOG=loud: the level must be" "$tmp/err" \
	&& ok "a bad QNEXT_LOG is named and the answer comes" || bad "bad QNEXT_LOG (exit $rc)" "$tmp/err"

# The full-screen chat: the UI and the engine thread each log as themselves.
export QNEXT_LOG="debug:$tmp/ui.log"
start share/tiny "--max-tokens 6 --seed 3"
if wait_for "ready in"; then
	send_line "a question"
	wait_for "tok/s, first token" || bad "the reply ends" /dev/null
fi
$T send-keys F10
wait_exit >/dev/null
unset QNEXT_LOG
grep -q EXIT=0 "$tmp/exit" && ok "the chat exits 0" || bad "the chat's exit" "$tmp/stderr"
for l in "ui info: full-screen chat: ${COLS}x${ROWS}" "engine info: load share/tiny" \
	"engine info: loaded in" "engine info: pool: " "engine info: reply: " \
	"ui info: full-screen chat: quit" "ui info: exit status 0"; do
	grep -q "Z $l" "$tmp/ui.log" && ok "chat log has '$l'" || bad "chat log lacks '$l'" "$tmp/ui.log"
done
finish

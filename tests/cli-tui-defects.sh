#!/bin/sh
# cli-tui-defects.sh - the full-screen chat's defects a new user found
# (issue 8), each driven in tmux the way the user hit it, so none comes
# back: changing the conversation while an answer streams, a crash leaving
# the terminal raw, wrapped text losing characters, ...
# Run from the repository root (make test does, for the release and the ASan build).
. tests/tui-lib.sh

# ---- 1. the conversation changes while an answer streams ----------------
start "$tmp/endless" "--max-tokens 100000"
expect "endless model loads" "ready in"
send_line "first chat"
expect "first answer streams" "generating"
$T send-keys C-c
expect "first answer stopped" " - stopped"
send_line "/new"
send_line "second chat"
expect "second answer streams" "generating"
send_line "/new"
sleep 1
[ ! -s "$tmp/exit" ] && wait_for "new conversation" 20 && ok "/new while generating keeps running" \
	|| bad "/new while generating ($(cat $tmp/exit 2>/dev/null))"
send_line "third chat"
expect "third answer streams" "generating"
$T send-keys M-2
sleep 1
[ ! -s "$tmp/exit" ] && wait_for "opened" 20 && ok "Alt-2 while generating opens the chat" \
	|| bad "Alt-2 while generating ($(cat $tmp/exit 2>/dev/null))"
send_line "fourth chat"
expect "fourth answer streams" "generating"
$T send-keys F2
expect "browser while generating" "conversations - Enter"
$T send-keys j Enter
sleep 1
[ ! -s "$tmp/exit" ] && wait_for "opened" 20 && ok "F2, j, Enter while generating" \
	|| bad "F2 j Enter while generating ($(cat $tmp/exit 2>/dev/null))"
send_line "fifth chat"
expect "fifth answer streams" "generating"
send_line "/delete"
$T send-keys y
sleep 1
[ ! -s "$tmp/exit" ] && ok "/delete while generating" || bad "/delete while generating ($(cat $tmp/exit))"
quit_ok "quit after switching chats mid-answer"
"$Q" export 2 >"$tmp/e2.md" 2>&1 && grep -q "fourth chat" "$tmp/e2.md" \
	&& ok "the chat left mid-answer was saved" || { bad "chat left mid-answer saved"; cat "$tmp/e2.md"; }

# A fatal signal puts the terminal back (echo, canonical mode, main screen).
$T kill-server 2>/dev/null
n_start=$((n_start + 1))
T="tmux -L qnext-test-$$-$n_start"
# dash, because bash would put the terminal back itself after a killed job.
$T -f /dev/null new-session -d -x 100 -y 30 "env PS1='shell$ ' dash -i"
sleep 0.5
send_line "LANG=C.UTF-8 TERM=xterm-256color $Q -m tests/data/tiny 2>/dev/null"
expect "started from a shell" "ready in"
kill -SEGV "$(pgrep -f "$Q -m tests/data/tiny" | head -1)"
wait_for "shell\\$" 50
send_line "echo RAW=\$(stty -a | tr ' ;' '\\n\\n' | grep -cx -- '-echo\\|-icanon')"
if wait_for "RAW=[0-9]" 30 && screen | grep -q "^RAW=0"; then ok "SIGSEGV restores the terminal"
else bad "SIGSEGV left the terminal broken"; fi

# ---- 2. wrapped lines keep every character --------------------------------
abc=abcdefghijklmnopqrstuvwxyz
long="$abc$abc$abc$abc$abc$abc"
# The text rows of the last "you" entry, indentation removed, joined.
you_text() {
	screen | awk '/^you$/ { t = ""; on = 1; next } on && /^$/ { on = 0 } on { sub(/^  /, ""); t = t $0 } END { print t }'
}
COLS=80 ROWS=24 start tests/data/tiny "--max-tokens 3"
expect "80x24 start" "ready in"
send_line "$long"
wait_for "tok/s" 100
got=$(you_text)
[ "$got" = "$long" ] && ok "156 letters wrapped at 80 columns are all shown" \
	|| bad "wrapped at 80: got ${#got} of ${#long}: $got"
quit_ok "quit at 80x24"
cjk="漢字仮名交じり文の折り返しを確かめるための長い日本語の文章です。途中で文字が消えてはいけません。"
cjk="$cjk$cjk"
COLS=120 ROWS=36 start tests/data/tiny "--max-tokens 3"
expect "120x36 start" "ready in"
send_line "$cjk"
wait_for "tok/s" 100
got=$(you_text)
[ "$got" = "$cjk" ] && ok "CJK text wrapped at 120 columns is all shown" \
	|| bad "CJK wrapped at 120: got $got"
quit_ok "quit at 120x36"

finish

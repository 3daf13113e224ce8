#!/bin/sh
# cli-tui.sh - the full-screen UI driven in tmux on the tiny model: a
# streamed answer with its thinking panel, Ctrl-O, stopping a generation
# (Ctrl-C and Esc), resizing, a two-line bracketed paste sent as one message,
# a conversation reopened after a restart, searched and exported, the help
# overlay, a broken history DB, a missing model, and a clean exit every time.
# Uses a private tmux socket; run from the repository root.
. tests/tui-lib.sh

start share/tiny "--max-tokens 40 --seed 3"
expect "model loads, status shows ready" "ready in"
expect "gauges drawn" "Mem\["
$T send-keys -l "What is the answer?"
$T send-keys Enter
expect "question shown" "What is the answer?"
expect "thinking panel summary" "thought for"
expect "turn statistics" "tok/s, first token"
$T send-keys C-o
sleep 0.3
$T capture-pane -p | grep -q "v thought for" && ok "Ctrl-O expands the panel" || bad "Ctrl-O expands"
$T send-keys C-o
$T send-keys -l "/help"
$T send-keys Enter
expect "help overlay" "qnext help"
$T send-keys q
sleep 0.3
$T capture-pane -p | grep -q "qnext help" && bad "help closes" || ok "help closes"
# Bracketed paste of two lines is one message.
printf 'first pasted line\nsecond pasted line' >"$tmp/paste"
$T load-buffer "$tmp/paste"
$T paste-buffer -p
sleep 0.3
$T send-keys Enter
expect "pasted message sent" "second pasted line"
sleep 1
n=$($T capture-pane -p | grep -c "^you$")
[ "$n" = 2 ] && ok "two lines made one message" || bad "paste became $n messages"
$T resize-window -x 60 -y 20
sleep 0.5
w=$($T capture-pane -p | awk '{ if (length($0) > m) m = length($0) } END { print m }')
[ "$w" -le 60 ] && ok "resize rewraps to 60 columns" || bad "resize: a line is $w wide"
$T resize-window -x 30 -y 8
expect "tiny terminal message" "too small"
$T resize-window -x 100 -y 30
expect "back to normal size" "Mem\["
quit_ok "quit with F10 restores and exits 0"

# Ctrl-Z under a job-control shell: the shell reports the stop, fg resumes.
$T kill-server 2>/dev/null
n_start=$((n_start + 1))
T="tmux -L qnext-test-$$-$n_start"
$T -f /dev/null new-session -d -x 100 -y 30 "env PS1='shell$ ' bash --norc --noprofile -i"
sleep 0.5
$T send-keys -l "LANG=C.UTF-8 TERM=xterm-256color $Q -m share/tiny"
$T send-keys Enter
expect "started from a shell" "ready in"
$T send-keys C-z
expect "Ctrl-Z suspends to the shell" "Stopped"
$T send-keys -l "fg"
$T send-keys Enter
expect "fg brings the screen back" "Mem\["
$T send-keys -l "/show params"
$T send-keys Enter
expect "usable after resume" "top_k  *20 "
$T send-keys F10
$T send-keys -l 'echo "EXIT=$?"'
$T send-keys Enter
expect "exit 0 after resume" "EXIT=0"

# Reopen after a restart, search, export.
start share/tiny "--max-tokens 20"
expect "restart" "ready in"
$T send-keys M-1
expect "Alt-1 reopens the last conversation" "What is the answer?"
$T send-keys -l "/search pasted"
$T send-keys Enter
expect "search finds the pasted message" "\[pasted\]"
$T send-keys Enter
expect "Enter opens the hit" "first pasted line"
$T send-keys -l "/export md $tmp/chat.md"
$T send-keys Enter
expect "export reported" "exported to"
grep -q "What is the answer?" "$tmp/chat.md" 2>/dev/null && ok "export has the question" || bad "export file"
$T send-keys -l "/rename Tested chat"
$T send-keys Enter
expect "rename" "renamed to"
$T send-keys F2
expect "browser lists the renamed chat" "Tested chat"
$T send-keys q
quit_ok "second quit"
"$Q" export 1 --format json >"$tmp/export.json" && grep -q '"title": "Tested chat"' "$tmp/export.json" \
	&& ok "qnext export ID" || bad "qnext export ID"

# Stopping: Ctrl-C, then Esc, on a model that never ends its turn.
start "$tmp/endless" "--max-tokens 100000"
expect "endless model loads" "ready in"
$T send-keys -l "Go on forever"
$T send-keys Enter
expect "generation runs" "generating"
$T send-keys C-c
expect "Ctrl-C stops it" " - stopped"
$T send-keys -l "And again"
$T send-keys Enter
expect "second generation runs" "generating"
$T send-keys Escape
i=0
while $T capture-pane -p | grep -q "generating\|stopping" && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
last=$($T capture-pane -p | grep -o " - [a-z ]*, seed" | tail -1)
case "$last" in *" - stopped, seed") ok "Esc stops it too" ;; *) bad "Esc did not stop: $last" ;; esac
i=0
while $T capture-pane -p | grep -q "generating\|stopping" && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
$T send-keys -l "still usable"
$T send-keys Enter
expect "a third turn starts" "generating"
$T send-keys C-c
quit_ok "quit after stops"
# The answer may scroll the question away: the saved conversation has it.
"$Q" export 2 >"$tmp/e2.md" 2>&1 && grep -q "still usable" "$tmp/e2.md" && ok "UI usable after stops" \
	|| { bad "UI usable after stops"; cat "$tmp/e2.md"; }

# A broken history DB: the chat still works, without saving.
mkdir -p "$tmp/bad/qnext"
printf 'this is not a database at all, just some text padding it out........' >"$tmp/bad/qnext/chats.db"
XDG_DATA_HOME="$tmp/bad" start share/tiny "--max-tokens 5"
expect "corrupt DB reported" "history is off"
expect "loads with history off" "ready in"
$T send-keys -l "Hi"
$T send-keys Enter
expect "chat works without history" "tok/s, first token"
quit_ok "quit with history off"

# A model that fails to load: the UI stays usable.
mkdir "$tmp/broken"
cp share/tiny/*.json "$tmp/broken/"
start "$tmp/broken" ""
expect "load failure shown" "cannot load the model"
$T send-keys -l "/show params"
$T send-keys Enter
expect "commands work without a model" "temp  *0.60 "
quit_ok "quit without a model"

# SIGTERM saves and restores the terminal.
start "$tmp/endless" "--max-tokens 100000"
expect "before SIGTERM" "ready in"
$T send-keys -l "Keep going"
$T send-keys Enter
expect "generating before SIGTERM" "generating"
kill -TERM $(pgrep -P "$($T display -p '#{pane_pid}')") 2>/dev/null
i=0
while [ ! -s "$tmp/exit" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
grep -q "EXIT=0" "$tmp/exit" && ok "SIGTERM exits 0" || bad "SIGTERM exit"
"$Q" export 3 >"$tmp/e3.md" 2>&1 && grep -q "Keep going" "$tmp/e3.md" && ok "the interrupted turn was saved" \
	|| { bad "interrupted turn saved"; cat "$tmp/e3.md"; }

finish

#!/bin/sh
# cli-tui-branch.sh - branches in the full-screen chat on the tiny model:
# F5 keeps the old answer as a sibling ("< 2/2 >"), Ctrl-X Left / Right
# switch between them and the answer shown follows; /edit forks from an
# earlier question, and its old branch is still there; the branch shown
# when quitting is the one Alt-1 reopens and `qnext export` writes; and
# during an answer a switch or an edit is refused (the turn is not
# disturbed: run this under ASan too).  Run from the repository root.
. tests/tui-lib.sh

# The reasoning and answer rows of the last "qnext" entry, joined: what
# changes between sibling answers (the stats row is left out).
answer() {
	screen | awk '/^qnext/ { t = ""; on = 1; next }
		on && (/tok\/s/ || /^you/ || /^Mem\[/) { on = 0 }
		on { sub(/^  /, ""); t = t $0 } END { print t }'
}
# Wait for the turn's stats row (" - token limit" or " - end of turn"), i.e. the answer has ended.
done_wait() { wait_for "token limit\|end of turn" 300; sleep 0.3; }
has() { screen | grep -q -- "$1"; }

fresh_history branch
start share/tiny "--max-tokens 12"
expect "model loads" "ready in"
send_line "/think show"
send_line "What is two?"
done_wait
a1=$(answer)
[ -n "$a1" ] && ok "first answer shown" || bad "first answer shown"

# ---- regenerate: siblings, and switching between them ----------------------
$T send-keys F5
expect "F5 makes a second answer: < 2/2 >" "qnext  < 2/2 >"
done_wait
a2=$(answer)
[ -n "$a2" ] && [ "$a2" != "$a1" ] && ok "the regenerated answer differs" \
	|| bad "regenerated answer: '$a2' vs '$a1'"
$T send-keys C-x Left
expect "Ctrl-X Left shows < 1/2 >" "qnext  < 1/2 >"
[ "$(answer)" = "$a1" ] && ok "and the first answer again" || bad "1/2 shows '$(answer)'"
$T send-keys C-x Left
expect "no earlier branch at 1/2" "no earlier branch"
$T send-keys C-x Right
expect "Ctrl-X Right back to < 2/2 >" "qnext  < 2/2 >"
[ "$(answer)" = "$a2" ] && ok "and the second answer again" || bad "2/2 shows '$(answer)'"

# ---- /edit the first question: a new branch from there ---------------------
send_line "What is three?"
done_wait
$T send-keys -l "/edit 1"
$T send-keys Enter
expect "/edit 1 puts the first question in the input" "edit 1: What is two?"
$T send-keys C-u
send_line "What is four?"
expect "the edited question is sent" "What is four?"
done_wait
has "What is two?" && bad "the old question is still shown" || ok "the old question is gone"
has "What is three?" && bad "the old branch's later turn is still shown" \
	|| ok "and so is the old branch's later turn"
has "^you  < 2/2 >" && ok "the new question shows < 2/2 >" || bad "no < 2/2 > on the question"
[ -n "$(answer)" ] && ok "the edited question is answered" || bad "no answer to the edit"
$T send-keys C-x Left
expect "Ctrl-X Left: the old branch" "What is three?"
has "What is two?" && ok "with the old first question" || bad "old first question missing"
has "What is four?" && bad "the edit is still shown on the old branch" || ok "without the edit"
has "^you  < 1/2 >" && ok "the old question shows < 1/2 >" || bad "no < 1/2 > on the question"
has "qnext  < 2/2 >" && ok "and its regenerated answer, < 2/2 >" || bad "old branch's answer"
# Its answer is at its last sibling: Right moves the question instead.
$T send-keys C-x Right
expect "Ctrl-X Right: the edited branch again" "What is four?"
$T send-keys C-x Left
expect "and back to the old one" "What is three?"
$T send-keys -l "/edit 3"
$T send-keys Enter
expect "/edit N past the end says so" "there are 2 messages of yours"
quit_ok "quit on the old branch"

# ---- the branch shown is the one kept -----------------------------------------
start share/tiny "--max-tokens 12"
expect "restart" "ready in"
$T send-keys M-1
expect "Alt-1 reopens on the branch left" "What is three?"
has "What is four?" && bad "reopened on the edited branch" || ok "not the edited one"
has "^you  < 1/2 >" && ok "the reopened question shows < 1/2 >" || bad "reopened: no < 1/2 >"
quit_ok "quit after reopening"
"$Q" export 1 >"$tmp/branch.md" 2>&1
grep -q "What is three?" "$tmp/branch.md" && ! grep -q "What is four?" "$tmp/branch.md" \
	&& ok "qnext export writes the branch shown" || bad "export: $(cat "$tmp/branch.md")"

# ---- history off: an edit replaces the turns below it on screen ------------------
mkdir -p "$tmp/bad/qnext"
printf 'this is not a database at all, just some text padding it out........' \
	>"$tmp/bad/qnext/chats.db"
XDG_DATA_HOME="$tmp/bad" start share/tiny "--max-tokens 12"
expect "history off" "history is off"
expect "loads with history off" "ready in"
send_line "Old question"
done_wait
$T send-keys -l "/edit"
$T send-keys Enter
expect "/edit with history off" "edit 1: Old question"
$T send-keys C-u
send_line "New question"
expect "the edit is sent" "New question"
done_wait
has "Old question" && bad "history off: the old question stays" || ok "history off: replaced"
[ "$(screen | grep -c '^you')" = 1 ] && ok "one question on screen" || bad "questions on screen"
$T send-keys C-x Left
expect "history off: no branches to switch" "no branches are kept"
quit_ok "quit with history off"

# ---- during an answer: switching and editing are refused, the turn goes on -----
start "$tmp/endless" "--max-tokens 100000"
expect "endless model loads" "ready in"
$T send-keys M-1
expect "reopened for the endless turn" "What is three?"
$T send-keys F5
expect "an endless answer streams" "^generating"
$T send-keys C-x Left
expect "Ctrl-X Left while streaming is refused" "stop it first"
$T send-keys -l "/edit 1"
$T send-keys Enter
expect "/edit while streaming is refused" "cannot edit: an answer is being generated"
has "edit 1:" && bad "the edit prompt opened while streaming" || ok "no edit prompt"
$T send-keys Escape
expect "Esc stops it" " - stopped"
# An edit prompt left open while F5 starts an answer: Enter must not fork under it.
$T send-keys -l "/edit 1"
$T send-keys Enter
expect "edit prompt" "edit 1: What is two?"
$T send-keys F5
expect "F5 from the edit prompt streams" "^generating"
$T send-keys Enter
expect "Enter while streaming does not fork" "cannot fork now"
$T send-keys Escape
expect "stopped again" " - stopped"
$T send-keys C-x Left
expect "switching after the stop works" "branch "
quit_ok "quit after the refusals"

finish

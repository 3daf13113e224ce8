#!/bin/sh
# cli-tui-mouse.sh - the mouse (docs/ui.md "Mouse"): off by default, on
# from the settings file, Alt-M and /set mouse; when on, the wheel scrolls
# the transcript, a click on a "> thought" line opens that panel, a click in
# the conversation list selects a row and a second click opens it.  The
# reports are sent as the SGR sequences (mode 1006) a terminal sends; tmux
# says whether the program asked for them (#{mouse_sgr_flag}).
# Run from the repository root.
. tests/tui-lib.sh

sgr() { $T display -p '#{mouse_sgr_flag}'; }
# click ROW (1-based, as the terminal counts) in column 5: press and release.
click() { $T send-keys -l "$(printf '\033[<0;5;%dM\033[<0;5;%dm' "$1" "$1")"; }
wheel() { $T send-keys -l "$(printf '\033[<%d;5;5M' "$1")"; } # 64 up, 65 down
row_of() { screen | grep -n -- "$1" | head -1 | cut -d: -f1; }
# settle: until two captures 0.3 s apart agree (the last answer's stats line drawn), so a
# row found next is still that row when the click arrives.
settle() {
	i=0
	while [ $i -lt 30 ]; do
		a=$(screen)
		sleep 0.3
		[ "$a" = "$(screen)" ] && return 0
		i=$((i + 1))
	done
}

# ---- off by default: no reports asked for ------------------------------------
start share/tiny "--max-tokens 5"
expect "loads" "ready in"
[ "$(sgr)" = 0 ] && ok "mouse off by default" || bad "mouse on without being asked"
$T send-keys M-m
expect "Alt-M turns it on" "mouse on"
[ "$(sgr)" = 1 ] && ok "Alt-M asks for SGR reports" || bad "no SGR mode after Alt-M"
send_line "/set mouse off"
expect "/set mouse off" "mouse set for this chat only"
[ "$(sgr)" = 0 ] && ok "/set mouse off turns reports off" || bad "reports still on"
quit_ok "quit"

# ---- on from the file: clicks and the wheel ---------------------------------
mkdir -p "$tmp/config/qnext"
printf 'mouse = on\n' >"$tmp/config/qnext/config"
ROWS=16
start share/tiny "--max-tokens 5"
expect "loads with mouse = on" "ready in"
[ "$(sgr)" = 1 ] && ok "the file's mouse = on asks for reports" || bad "no SGR mode from the file"
# answered Q: until an answer's stats line ("N tokens, ... - token limit" or "- end of turn":
# sampling may end the turn early) shows below "question Q" (an older answer's line above it
# does not count: the next question must not go out while this one is answered).
answered() {
	i=0
	while [ $i -lt 150 ]; do
		screen | awk -v q="question $1" 'index($0, q) { seen = 1 }
			seen && /tokens, .*first token/ { found = 1 } END { exit !found }' && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
for q in one two three four; do
	send_line "question $q"
	answered $q || bad "question $q answered"
done
settle
# The last answer's summary.
r=$(screen | grep -n -- "> thought" | tail -1 | cut -d: -f1)
if [ -n "$r" ]; then
	click "$r"
	expect "a click opens the thinking panel" "v thought"
else bad "no thinking line to click"; fi
wait_for "question four"
wheel 64
wheel 64
wheel 64
if wait_gone "question four" 30; then ok "the wheel scrolls up"; else bad "wheel up did not scroll"; fi
wheel 65
wheel 65
wheel 65
expect "the wheel scrolls back down" "question four"
# Nothing of the reports reached the input line.
screen | tail -1 | grep -q '<' && bad "a report leaked into the input" || ok "reports stay out of the input"
# Panels open and close in place: the view is anchored at the bottom, and a panel's lines below
# the clicked one would push that line up (out of view when it is near the top).
# at_row R TEXT: until screen row R shows TEXT.
at_row() {
	i=0
	until screen | sed -n "$1p" | grep -q -- "$2" || [ $i -ge 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	screen | sed -n "$1p" | grep -q -- "$2"
}
# in_place NAME PICK FROM TO: click the row `grep -n FROM | PICK` finds; it must show TO there.
in_place() {
	settle
	r=$(screen | grep -n -- "$3" | $2 -1 | cut -d: -f1)
	if [ -z "$r" ]; then
		bad "$1: no '$3' row in view"
		return
	fi
	click "$r"
	at_row "$r" "$4" && ok "$1 (row $r)" || bad "$1: row $r shows $(screen | sed -n "${r}p")"
}
in_place "a click closes the last panel in place" tail "v thought" "> thought"
in_place "a click opens the summary in place" head "> thought" "v thought"
# Scrolled up until an earlier answer's summary is in the top three rows (the wheel moves three
# lines, so it lands there): opened, it stays there.
for _ in $(seq 12); do
	screen | head -3 | grep -q -- "> thought" && break
	wheel 64
	sleep 0.3
done
in_place "a click near the top opens that summary in place" head "> thought" "v thought"

# ---- the conversation list: a click selects, a second opens -----------------
send_line "/new"
send_line "second chat"
wait_for "token limit\|end of turn"
$T send-keys F2
expect "the list opens" "conversations - Enter open"
# Rows: the title bar, then two lines per conversation; the second is on row 4.
click 4
sleep 0.3
screen | grep -q "conversations - Enter open" && ok "a first click only selects" ||
	bad "the first click closed the list"
click 4
expect "a click on the selected row opens it" "question one"
wait_gone "conversations - Enter open" 20 && ok "the list closed" || bad "list still open"
quit_ok "quit with the mouse on"
finish

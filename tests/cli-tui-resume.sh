#!/bin/sh
# cli-tui-resume.sh - the full-screen chat reopens a saved conversation
# without reading it again (docs/resume.md): a conversation on share/tiny,
# quit, restart, Alt-1, another message; its stats line says most of the
# prompt was not new.  With --state-cache off the same steps read it all.
# Run from the repository root.
. tests/tui-lib.sh

long="Tell me, at some length, how rivers carve valleys, how lakes fill them, and why the sea is salt."
long="$long $long $long"

# last_stats: "N M" of the last "prompt N (M new)" on the screen.
last_stats() { screen | sed -n 's/.*prompt \([0-9]*\) (\([0-9]*\) new).*/\1 \2/p' | tail -1; }
n_stats() { screen | grep -c "new)"; }
# wait_more COUNT: until more than COUNT stats lines are on the screen.
wait_more() {
	i=0
	while [ $i -lt 300 ]; do
		[ "$(n_stats)" -gt "$1" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# talk ARGS: one conversation (two turns), quit; restart, Alt-1, one more turn.
# Sets total and new from the last turn's stats line.
talk() {
	fresh_history "$2"
	start share/tiny "--max-tokens 6 $1"
	expect "ready ($2)" "ready in"
	send_line "$long"
	wait_more 0 || bad "first answer ($2)"
	send_line "And what of the mountains where they begin?"
	wait_more 1 || bad "second answer ($2)"
	quit_ok "quit ($2)"
	start share/tiny "--max-tokens 6 $1"
	expect "restart ($2)" "ready in"
	$T send-keys M-1
	expect "Alt-1 reopens it ($2)" "where they begin"
	before=$(n_stats)
	send_line "One more question."
	wait_more "$before" && ok "answer after the reopen ($2)" || bad "answer after the reopen ($2)"
	set -- $(last_stats)
	total=${1:-0} new=${2:-0}
	quit_ok "quit again"
}

talk "" cached
if [ "$total" -gt 0 ] && [ "$new" -gt 0 ] && [ $((new * 3)) -lt "$total" ]; then
	ok "reopened conversation: $new of $total prompt tokens new"
else
	bad "reopened conversation: '$new' of '$total' new"
fi
ls "$XDG_CACHE_HOME/qnext/state/"*.qsnap >/dev/null 2>&1 && ok "states saved under XDG_CACHE_HOME" ||
	bad "no state files"

rm -rf "$XDG_CACHE_HOME/qnext/state"
talk "--state-cache off" uncached
[ "$total" -gt 0 ] && [ "$new" = "$total" ] && ok "--state-cache off: all $total new" ||
	bad "--state-cache off: '$new' of '$total' new"
[ ! -d "$XDG_CACHE_HOME/qnext/state" ] || [ -z "$(ls "$XDG_CACHE_HOME/qnext/state")" ] &&
	ok "--state-cache off writes nothing" || bad "--state-cache off wrote states"
finish

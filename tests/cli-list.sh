#!/bin/sh
# cli-list.sh - `qnext list` prints one row per saved conversation (ID,
# last activity, messages, title), most recent first, whose IDs `qnext
# export` accepts; it respects XDG_DATA_HOME and never creates a database.
# The conversations are made by the full-screen chat in a private tmux
# server on the tiny model.  Run from the repository root.
. tests/tui-lib.sh
# Failures here are about files: show what the command printed.
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/  | /' "$tmp/out" "$tmp/err" 2>/dev/null; }

# No database yet: nothing listed, nothing created.
"$Q" list >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 0 ] && [ ! -s "$tmp/out" ] && grep -q "no saved conversations" "$tmp/err" \
	&& [ ! -e "$tmp/data/qnext/chats.db" ] && ok "no database: empty list, none created" \
	|| bad "no database (exit $rc)"

# Two conversations: the first is renamed, the second is the most recent.
start share/tiny "--max-tokens 8 --seed 1"
made=0
if wait_for "ready in"; then
	send_line "First question here"
	wait_for "tok/s, first token" && send_line "/rename Renamed chat" && wait_for "renamed to" \
		&& send_line "/new" && sleep 0.5 && send_line "Second question" && sleep 0.5 \
		&& wait_for "tok/s, first token" && made=1
fi
$T send-keys F10
wait_exit >/dev/null
[ $made = 1 ] && grep -q EXIT=0 "$tmp/exit" && ok "two conversations made" \
	|| bad "making two conversations in the full-screen chat"

"$Q" list >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 0 ] && [ ! -s "$tmp/err" ] && ok "list exits 0, quietly" || bad "list (exit $rc)"
head -1 "$tmp/out" | grep -q "^ *ID  UPDATED  *MSGS  TITLE$" && ok "header row" || bad "header row"
[ "$(wc -l <"$tmp/out")" = 3 ] && ok "one row per conversation" || bad "row count"
date='[0-9]\{4\}-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]'
sed -n 2p "$tmp/out" | grep -q "^ *2  $date  *2  Second question$" \
	&& ok "most recent first: ID, date, messages, title" || bad "second conversation's row"
sed -n 3p "$tmp/out" | grep -q "^ *1  $date  *2  Renamed chat$" \
	&& ok "the renamed conversation's title" || bad "first conversation's row"
id=$(sed -n 3p "$tmp/out" | awk '{ print $1 }')
"$Q" export "$id" >"$tmp/out" 2>"$tmp/err" && grep -q "First question here" "$tmp/out" \
	&& ok "qnext export takes a listed ID" || bad "export $id"

# XDG_DATA_HOME is where the database is looked for.
XDG_DATA_HOME="$tmp/elsewhere" "$Q" list >"$tmp/out" 2>"$tmp/err"
[ ! -s "$tmp/out" ] && grep -q "$tmp/elsewhere/qnext/chats.db" "$tmp/err" \
	&& ok "XDG_DATA_HOME respected" || bad "XDG_DATA_HOME"

# Usage.
"$Q" list --help >"$tmp/out" 2>"$tmp/err" && grep -q "^usage: qnext list" "$tmp/out" \
	&& ok "list --help" || bad "list --help"
"$Q" list extra >"$tmp/out" 2>"$tmp/err"
[ $? = 2 ] && grep -q "unexpected argument 'extra'" "$tmp/err" && ok "list extra: usage error" \
	|| bad "list extra"
finish

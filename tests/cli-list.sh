#!/bin/sh
# cli-list.sh - `qnext list` prints one row per saved conversation (ID,
# last activity, messages, title), most recent first, whose IDs `qnext
# export` accepts; it respects XDG_DATA_HOME and never creates a database.
# The conversations are made by the full-screen chat in a private tmux
# server on the tiny model.  Run from the repository root.
Q=$(cd "$(dirname "${QNEXT_BIN:-./qnext}")" && pwd)/$(basename "${QNEXT_BIN:-./qnext}")
command -v tmux >/dev/null || { echo "cli-list: tmux missing (make deps installs it)"; \
	echo "cli-list: 0 passed, 1 failed"; exit 1; }
pass=0
fail=0
tmp=$(mktemp -d)
T="tmux -L qnext-list-$$"
export XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state" XDG_CACHE_HOME="$tmp/cache"

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/  | /' "$tmp/out" "$tmp/err" 2>/dev/null; }

# Wait up to 15 s for text on the screen.
wait_for() {
	i=0
	while [ $i -lt 150 ]; do
		$T capture-pane -p 2>/dev/null | grep -q -- "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	echo "  (waited for '$1')"
	$T capture-pane -p 2>/dev/null | sed 's/^/  | /'
	return 1
}

send() { # text: type it and press Enter
	$T send-keys -l "$1"
	$T send-keys Enter
}

# No database yet: nothing listed, nothing created.
"$Q" list >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 0 ] && [ ! -s "$tmp/out" ] && grep -q "no saved conversations" "$tmp/err" \
	&& [ ! -e "$tmp/data/qnext/chats.db" ] && ok "no database: empty list, none created" \
	|| bad "no database (exit $rc)"

# Two conversations: the first is renamed, the second is the most recent.
$T -f /dev/null new-session -d -x 100 -y 30 \
	"env LANG=C.UTF-8 TERM=xterm-256color $Q -m tests/data/tiny --max-tokens 8 --seed 1 \
	2>>$tmp/stderr; echo EXIT=\$? >$tmp/exit; sleep 30"
made=0
if wait_for "ready in"; then
	send "First question here"
	wait_for "tok/s, first token" && send "/rename Renamed chat" && wait_for "renamed to" \
		&& send "/new" && sleep 0.5 && send "Second question" && sleep 0.5 \
		&& wait_for "tok/s, first token" && made=1
fi
$T send-keys F10
i=0
while [ ! -s "$tmp/exit" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
$T kill-server 2>/dev/null
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
rm -rf "$tmp"
echo "cli-list: $pass passed, $fail failed"
[ "$fail" = 0 ]

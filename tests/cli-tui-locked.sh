#!/bin/sh
# cli-tui-locked.sh - the chat while another process keeps the history
# database locked (issue 10, item 12): the screen comes up and echoes keys
# at once, the turns made meanwhile are kept and saved once the lock is
# gone, and history is back without a restart.  The lock is held by
# tests/lockdb.c (built here) with BEGIN EXCLUSIVE, as a writer would.
# Run from the repository root.
. tests/tui-lib.sh

cc -o "$tmp/lockdb" tests/lockdb.c $(pkg-config --cflags --libs sqlite3) || {
	echo "FAIL cannot build tests/lockdb.c"; echo "cli-tui-locked: 0 passed, 1 failed"; exit 1; }
db=$XDG_DATA_HOME/qnext/chats.db

# One saved conversation, so the file exists.
start share/tiny "--max-tokens 12 --seed 3"
expect "model loads" "ready in"
send_line "before the lock"
expect "first answer" "tok/s, first token"
quit_ok "first run exits"

# Locked before the start and for 8 s: the screen must not wait for it.
"$tmp/lockdb" "$db" 8 >"$tmp/lock.out" &
locker=$!
i=0; while ! grep -q locked "$tmp/lock.out" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
start share/tiny "--max-tokens 12 --seed 3"
if wait_for "Mem\[" 20; then ok "screen up within 2 s under a lock"; else
	bad "screen under a lock"; fi
expect "history is paused, not off" "history is paused"
$T send-keys -l "typed while locked"
if wait_for "typed while locked" 10; then ok "keys echo within 1 s"; else bad "keys echo"; fi
$T send-keys Enter
expect "answer while locked" "tok/s, first token"
send_line "second question while locked"
if wait_for "second question while locked" 10; then ok "second question echoes"; else
	bad "second question echoes"; fi
expect "second answer while locked" "tok/s, first token"
# Leave that conversation: its turns wait in memory.
send_line "/new"
send_line "third question, a new chat"
expect "third answer while locked" "tok/s, first token"
wait $locker
# Within two retries (2 s apart) of the lock going, everything is saved.
expect "history is back" "history .* the database is free again"
sleep 3
quit_ok "exit after the lock"
if [ -s "$tmp/stderr" ] && grep -q "could not be saved" "$tmp/stderr"; then
	bad "nothing lost at exit"; else ok "nothing lost at exit"; fi

# Locked while the chat is open: the question and answer wait in memory.
start share/tiny "--max-tokens 12 --seed 3"
expect "model loads again" "ready in"
"$tmp/lockdb" "$db" 6 >"$tmp/lock.out" &
locker=$!
i=0; while ! grep -q locked "$tmp/lock.out" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
send_line "asked under a later lock"
expect "answer under a later lock" "tok/s, first token"
expect "the failed save is said" "not saved yet (kept"
wait $locker
expect "saved once the lock is gone" "history saved: the database is free again"
quit_ok "exit after the second lock"

# Every turn is in the file, in order.
$Q list >"$tmp/list" 2>&1
n=$(grep -c "^ *[0-9]" "$tmp/list")
[ "$n" = 4 ] && ok "four conversations saved" || { bad "conversations: $n"; cat "$tmp/list"; }
$Q export 2 >"$tmp/two.md" 2>&1
if grep -q "typed while locked" "$tmp/two.md" && grep -q "second question while locked" \
	"$tmp/two.md" && [ "$(grep -c '^## Assistant' "$tmp/two.md")" = 2 ]; then
	ok "the locked-time chat has both turns and answers"
else
	bad "locked-time chat"; cat "$tmp/two.md"
fi
awk '/typed while locked/ { a = NR } /second question while locked/ { b = NR }
	END { exit !(a && b && a < b) }' "$tmp/two.md" && ok "in the order they were asked" ||
	bad "order of the saved turns"
$Q export 3 2>&1 | grep -q "third question, a new chat" && ok "the chat started meanwhile" ||
	bad "third chat"
$Q export 4 2>&1 | grep -q "asked under a later lock" && ok "the chat of the second lock" ||
	bad "fourth chat"

finish

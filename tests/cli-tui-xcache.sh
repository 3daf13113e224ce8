#!/bin/sh
# cli-tui-xcache.sh - the full-screen chat with an expert cache (tiny model,
# a cache of a few experts): the notice says what the cache holds, no stale
# read-ahead progress is left on the status row, a turn completes, and the
# status row then gives the share of chosen experts found in memory and the
# megabytes read per token.  Run from the repository root.
. tests/tui-lib.sh

start share/tiny "--expert-cache 600K --max-tokens 24 --seed 7"
expect "cache notice" "expert cache: [0-9]* of 64 experts"
if screen | grep -q "reading weights"; then bad "stale read-ahead progress"; else
	ok "no read-ahead progress"; fi
$T send-keys "Hello there" Enter
if wait_for " - token limit\| - end of turn" 600; then ok "turn ends"; else bad "turn ends"; fi
expect "cache figures after the turn" "experts [0-9]*% in RAM, [0-9]* MB/tok read"
$T send-keys "/quit" Enter
i=0; while [ ! -f "$tmp/exit" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
grep -q "EXIT=0" "$tmp/exit" 2>/dev/null && ok "quits with status 0" || bad "quit status"
finish

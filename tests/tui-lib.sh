# tui-lib.sh - what the tmux-driven UI tests share (sourced, not run):
# a private tmux server per start, waiting for text, pass/fail counting,
# and a copy of the tiny model that never ends its turn.  Run from the
# repository root; QNEXT_BIN names the binary under test.
Q=$(cd "$(dirname "${QNEXT_BIN:-./qnext}")" && pwd)/$(basename "${QNEXT_BIN:-./qnext}")
command -v tmux >/dev/null || { echo "$0: tmux missing (make deps installs it)"; \
	echo "$0: 0 passed, 1 failed"; exit 1; }
pass=0
fail=0
tmp=$(mktemp -d)
n_start=0
T="tmux -L qnext-test-$$"
COLS=100
ROWS=30
export XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state" XDG_CACHE_HOME="$tmp/cache" \
	XDG_CONFIG_HOME="$tmp/config"

# A history DB of its own from here on (conversation IDs start at 1 again).
fresh_history() { export XDG_DATA_HOME="$tmp/data-$1"; }

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; $T capture-pane -p 2>/dev/null | sed 's/^/  | /'; }

# start MODEL_DIR "EXTRA ARGS": a fresh tmux server (private socket) each
# time, COLS x ROWS; the exit status lands in $tmp/exit, stderr in $tmp/stderr.
start() {
	$T kill-server 2>/dev/null
	n_start=$((n_start + 1))
	T="tmux -L qnext-test-$$-$n_start"
	rm -f "$tmp/exit"
	$T -f /dev/null new-session -d -x $COLS -y $ROWS \
		"env LANG=C.UTF-8 TERM=xterm-256color $Q -m $1 $2 2>>$tmp/stderr; echo EXIT=\$? >$tmp/exit; sleep 30"
}

# wait_for TEXT [TENTHS]: up to TENTHS/10 s (default 15 s) for text on the screen.
wait_for() {
	i=0
	while [ $i -lt "${2:-150}" ]; do
		$T capture-pane -p 2>/dev/null | grep -q -- "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# wait_gone TEXT [TENTHS]: until the text is no longer on the screen.
wait_gone() {
	i=0
	while [ $i -lt "${2:-150}" ]; do
		$T capture-pane -p 2>/dev/null | grep -q -- "$1" || return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

expect() { # name, text
	if wait_for "$2"; then ok "$1"; else bad "$1 (no '$2')"; fi
}

screen() { $T capture-pane -p; }

send_line() { # text: typed literally, then Enter
	$T send-keys -l "$1"
	$T send-keys Enter
}

# wait_exit [TENTHS]: until the program has ended; prints its status line.
wait_exit() {
	i=0
	while [ ! -s "$tmp/exit" ] && [ $i -lt "${1:-100}" ]; do sleep 0.1; i=$((i + 1)); done
	cat "$tmp/exit" 2>/dev/null
}

quit_ok() { # name
	$T send-keys F10
	if wait_exit | grep -q "EXIT=0"; then ok "$1"; else bad "$1 ($(cat $tmp/exit 2>/dev/null))"; fi
	rm -f "$tmp/exit"
}

# A copy of the tiny model that never emits its end token, for stopping.
mkdir "$tmp/endless"
cp share/tiny/* "$tmp/endless/"
printf '{"eos_token_id": [100000], "temperature": 0.6, "top_k": 20, "top_p": 0.95}' \
	>"$tmp/endless/generation_config.json"

finish() {
	$T kill-server 2>/dev/null
	rm -rf "$tmp"
	echo "$(basename "$0" .sh): $pass passed, $fail failed"
	[ "$fail" = 0 ]
}

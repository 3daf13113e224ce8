#!/bin/sh
# cli-tui-stop.sh - the full-screen chat on a mid-size synthetic model (16
# layers of the real width, 2 GB, made once into build/test-mid): load
# progress shows real figures from the start and never a stale one, and a
# stop or a quit during a long prefill takes effect within a small part of
# the time one prefill chunk takes (measured in the same run, so the bound
# holds in the slow ASan build as well).  Run from the repository root.
. tests/tui-lib.sh

mid=build/test-mid
if [ ! -f "$mid/model.safetensors" ]; then
	"$Q" mkmodel -o "$mid" --layers 16 --experts 10 --force >"$tmp/mkmodel.log" 2>&1 ||
		{ cat "$tmp/mkmodel.log"; bad "mkmodel mid-size"; finish; exit 1; }
fi
# Out of the page cache, so the load has something to read (GNU dd: count=0
# with iflag=nocache drops the file's cached pages).
dd if="$mid/model.safetensors" iflag=nocache count=0 2>/dev/null

ms() { date +%s%3N; }

# ---- 9. load progress: sizes from the start, never stale ------------------
start "$mid" "--max-tokens 4"
zero=0 seen_ready=0
i=0
while [ $i -lt 200 ]; do
	s=$(screen)
	echo "$s" | grep -q "Load\[.* 0B/0B\]\|ETA 0 s.*opening" && zero=1
	echo "$s" | grep -q "ready in" && { seen_ready=1; break; }
	sleep 0.05
	i=$((i + 1))
done
[ $seen_ready = 1 ] && ok "mid model loads" || bad "mid model loads"
[ $zero = 0 ] && ok "load progress shows the size from the start" || bad "load showed 0B/0B"
# A prompt right away interrupts the read-ahead; it must resume, not stay at N%.
send_line "hello"
expect "answer during the read-ahead" "token limit\|end of turn"
if wait_gone "reading weights\|paused during" 300; then ok "read-ahead progress ends (no stale figure)"
else bad "read-ahead figure left on screen"; fi
quit_ok "quit after the load check"

# ---- 10. stop and quit during a long prefill ----------------------------
# About 700 tokens: the prefill reads 256-token chunks.
long=$(i=0; while [ $i -lt 350 ]; do printf 'tell me '; i=$((i + 1)); done)
prefill_then() { # key: send the long prompt, time one chunk, press key; sets chunk and took (ms)
	chunk=0 took=0
	start "$mid" "--max-tokens 4"
	wait_for "ready in" 300 || return
	$T send-keys -l "$long"
	t0=$(ms)
	$T send-keys Enter
	wait_for "reading the prompt 256/" 1200 || return
	t1=$(ms)
	$T send-keys "$1"
	t2=$(ms)
	if [ "$1" = F10 ]; then
		i=0
		while [ ! -s "$tmp/exit" ] && [ $i -lt 1200 ]; do sleep 0.02; i=$((i + 1)); done
	else
		wait_for " - stopped" 1200
	fi
	chunk=$((t1 - t0)) took=$(($(ms) - t2))
}
prefill_then C-c
if [ $chunk -gt 0 ] && [ $took -lt $((chunk / 4)) ]; then ok "Ctrl-C in a prefill stops in $took ms (a chunk takes $chunk ms)"
else bad "Ctrl-C in a prefill: $took ms, a chunk $chunk ms"; fi
quit_ok "quit after the stop"
prefill_then F10
if [ $chunk -gt 0 ] && [ $took -lt $((chunk / 4)) ]; then ok "F10 in a prefill exits in $took ms (a chunk takes $chunk ms)"
else bad "F10 in a prefill: $took ms, a chunk $chunk ms"; fi
grep -q "EXIT=0" "$tmp/exit" && ok "and exits 0" || bad "F10 exit status: $(cat $tmp/exit)"

finish

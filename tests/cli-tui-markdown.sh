#!/bin/sh
# cli-tui-markdown.sh - answers laid out as Markdown in the full-screen chat.
# The tiny model answers gibberish, so a known Markdown answer (a heading,
# bold and code spans, a table, a fenced C block, a quote) streams from
# tests/replay-server.py into `qnext --remote` in tmux.  Checks: the markup
# is gone and the table's column bars line up (the rule's crosses under
# them), the code lines are there, `/copy code` puts exactly the code on the
# clipboard (OSC 52, which tmux takes into its paste buffer with
# set-clipboard on) and `/copy` the raw Markdown, export keeps the raw
# Markdown, and --raw (or markdown = off in the settings file) shows the
# answer as written; /set markdown switches between the two.  Run from the
# repository root.
. tests/tui-lib.sh

python3 tests/replay-server.py --model md=tests/data/remote/markdown-stream.sse \
	--delay 0.005 --lifetime 90 >"$tmp/replay.port" 2>"$tmp/replay.err" &
server=$!
for _ in $(seq 50); do [ -s "$tmp/replay.port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(head -1 "$tmp/replay.port")"

# table_aligned N: the table's lines (three column bars, or the rule's three
# crosses) have them at the same character positions, N lines at least and
# one rule; the quote's single bar is left out.
table_aligned() {
	screen >"$tmp/screen.txt"
	python3 - "$tmp/screen.txt" "$1" <<'EOF'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
cols = [tuple(i for i, c in enumerate(l) if c in "\u2502\u253c") for l in lines]
table = [c for c in cols if len(c) == 3]
rules = [l for l in lines if "\u253c" in l]
sys.exit(0 if len(table) >= int(sys.argv[2]) and len(set(table)) == 1 and
         len(rules) == 1 else 1)
EOF
}

start md "--remote $url"
$T set -g set-clipboard on
wait_for "Net md" || bad "replay server reached"
send_line "How do I sort in C?"
expect "answer streamed to its end" "Tip: check the return value."
if screen | grep -q "Sorting in C" && ! screen | grep -q "## Sorting"; then
	ok "heading without its #s"
else
	bad "heading without its #s"
fi
screen | grep -q "Use qsort from stdlib.h:" && ok "bold and code spans without their markup" ||
	bad "bold and code spans without their markup"
if table_aligned 5 && screen | grep -q "what qsort usually is, in place and fast on average"; then
	ok "table: column bars aligned, rule under the header"
else bad "table: column bars aligned"; fi
screen | grep -q "| quicksort |\|---|" && bad "raw table syntax on screen" ||
	ok "no raw table syntax"
screen | grep -q "merge sort .*n log n .*yes .*needs a buffer as large as the input" && ok "table cells in their row" ||
	bad "table cells in their row"
if screen | grep -q "#include <stdlib.h>" && screen | grep -q "int cmp(const void \*a" &&
	! screen | grep -q '```'; then
	ok "code block lines shown, fences not"
else
	bad "code block lines shown, fences not"
fi
screen | grep -q "^  .[^ ]* Tip: check" && ok "quote drawn with a bar" || bad "quote drawn with a bar"

send_line "/copy code"
expect "/copy code reports" "copied 92 bytes"
$T show-buffer >"$tmp/code.txt" 2>/dev/null
printf '#include <stdlib.h>\nint cmp(const void *a, const void *b) { return *(int *)a - *(int *)b; }\n' \
	>"$tmp/code.want"
if cmp -s "$tmp/code.txt" "$tmp/code.want"; then ok "/copy code: exactly the code"
else bad "/copy code: exactly the code"; od -c "$tmp/code.txt" | head -5; fi
send_line "/copy"
expect "/copy reports" "copied 486 bytes"
$T show-buffer >"$tmp/last.txt" 2>/dev/null
if grep -q '^| merge sort | n log n | yes | needs a buffer as large as the input |$' "$tmp/last.txt" &&
	grep -q 'Use \*\*qsort\*\* from `stdlib.h`:' "$tmp/last.txt" && grep -q '^```c$' "$tmp/last.txt"; then
	ok "/copy: the raw Markdown"
else
	bad "/copy: the raw Markdown"; sed 's/^/  | /' "$tmp/last.txt" | head
fi
# A narrow window: the table shrinks, its bars still line up.
$T resize-window -x 52 -y 30
sleep 0.3
wait_for "Tip: check" 30
if table_aligned 8; then ok "narrow window: cells wrapped, bars aligned"
else bad "narrow window: the table relaid"; fi
$T resize-window -x $COLS -y $ROWS
quit_ok "quit"

"$Q" export 1 >"$tmp/export.md" 2>&1
if grep -q '^| merge sort | n log n | yes | needs a buffer as large as the input |$' \
	"$tmp/export.md" && grep -q '^```c$' "$tmp/export.md"; then
	ok "export keeps the raw Markdown"
else
	bad "export keeps the raw Markdown"; head -30 "$tmp/export.md"
fi

# --raw: the answer as written.
start md "--remote $url --raw"
wait_for "Net md" || bad "replay server reached (--raw)"
send_line "How do I sort in C?"
expect "--raw: answer streamed" "Tip: \*check\* the return value."
if screen | grep -q "## Sorting in C" && screen | grep -q "| merge sort | n log n | yes | needs a buffer" &&
	screen | grep -q '^  ```c'; then
	ok "--raw shows the Markdown as written"
else
	bad "--raw shows the Markdown as written"
fi
# /set markdown switches a running chat: the same answer laid out again, then as written.
laid_out() { screen | grep -q "Sorting in C" && ! screen | grep -q "## Sorting"; }
send_line "/set markdown on"
i=0
until laid_out || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
laid_out && ok "/set markdown on lays the answer out" || bad "/set markdown on"
send_line "/set markdown off"
expect "/set markdown off shows it as written again" "## Sorting in C"
quit_ok "quit (--raw)"

# markdown = off in the settings file: as --raw.
mkdir -p "$tmp/config/qnext"
printf 'markdown = off\n' >"$tmp/config/qnext/config"
start md "--remote $url"
wait_for "Net md" || bad "replay server reached (markdown = off)"
send_line "How do I sort in C?"
expect "markdown = off: answer streamed" "Tip: \*check\* the return value."
screen | grep -q "## Sorting in C" && ok "markdown = off shows the Markdown as written" ||
	bad "markdown = off shows the Markdown as written"
send_line "/show"
expect "/show: markdown off, from the file" "markdown  *off  *config"
quit_ok "quit (markdown = off)"
rm -f "$tmp/config/qnext/config"

# NO_COLOR: plain text too, as --raw (the tmux server takes this environment).
export NO_COLOR=1
start md "--remote $url"
unset NO_COLOR
wait_for "Net md" || bad "replay server reached (NO_COLOR)"
send_line "How do I sort in C?"
expect "NO_COLOR: answer streamed" "Tip: \*check\* the return value."
screen | grep -q "## Sorting in C" && ok "NO_COLOR shows the Markdown as written" ||
	bad "NO_COLOR shows the Markdown as written"
quit_ok "quit (NO_COLOR)"

kill $server 2>/dev/null
finish

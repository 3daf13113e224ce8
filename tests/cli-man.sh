#!/bin/sh
# cli-man.sh - the man page as rendered: the example commands keep their
# quotes and paste into a shell as the arguments they show, and the JSON
# and /system examples keep theirs (mdoc eats a leading '"' in a macro's
# argument).  Run from the repository root.
Q=${QNEXT_BIN:-./qnext}
command -v groff >/dev/null || { echo "cli-man: groff missing (make deps installs groff-base)"; \
	echo "cli-man: 0 passed, 1 failed"; exit 1; }
pass=0
fail=0
page=$(mktemp)
# Plain text: no bold or underline, by escapes or by overstriking.
LC_ALL=C.UTF-8 groff -mdoc -Tutf8 -P-cbou man/qnext.1 >"$page" 2>/dev/null
# The same on one line, for text the filling may break across lines.
flat=$(tr '\n' ' ' <"$page" | tr -s ' ')

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
has() { # name, fixed text the rendered page must hold
	case "$flat" in *"$2"*) ok "$1" ;; *) bad "$1: lacks '$2'" ;; esac
}

has "sky example quoted" 'qnext -p "Why is the sky blue?" --thinking'
has "tiny example quoted" 'qnext -m share/tiny -p "Hello"'
has "--messages JSON quoted" '"role": ..., "content": ...}'
has "render JSON quoted" '{"messages": [...], "tools": [...]}'
has "/system clearing quoted" '/system ""'
has "/system spanning lines quoted" '/system """text"""'
has "qnext list documented" "list Print a header and one line per saved conversation"

# Pasted into a shell, the examples give the arguments they show.
line=$(grep '^ *qnext -p .*sky' "$page")
eval "set -- $line"
[ "$#" = 4 ] && [ "$3" = "Why is the sky blue?" ] && [ "$4" = "--thinking" ] \
	&& ok "sky example pastes as one question" || bad "sky example pastes as $# words"
line=$(grep '^ *qnext -m share/tiny -p ' "$page")
eval "set -- $line"
shift
if "$Q" "$@" --max-tokens 2 -q >/dev/null 2>&1; then ok "tiny example runs"; else bad "tiny example"; fi
rm -f "$page"
echo "cli-man: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/bin/sh
# check-layers.sh - the floor plan, checked: which folder may include which,
# and no include cycles between modules.  Run by `make lint`.
#
# A module is a .c file and its header in include/ (same stem); a header
# with no .c of its own belongs to the floor named in header_floor below.
# Floors, lowest first:
#   ground  src/           util, queue, paths, store, sysinfo, log, thread-role, the UI/engine contract
#   engine  engine/, engine/kernels/
#   tools   tools/         the subcommands and the one-shot prompt: clients of the engine
#   ui      ui/            the chats (full-screen and readline); the plain chat
#                          reuses the one-shot prompt's line-mode reply
#   main    src/main.c     dispatch only
# A file may include headers of its own floor and the floors below.  Prints
# one line per broken rule and exits 1.
set -eu
cd "$(dirname "$0")/.."

floor_rank() {
	case $1 in
	ground) echo 0 ;; engine) echo 1 ;; tools) echo 2 ;; ui) echo 3 ;; main) echo 4 ;;
	esac
}

# The floor a .c file stands on.
file_floor() {
	case $1 in
	src/main.c) echo main ;;
	src/*) echo ground ;;
	engine/*) echo engine ;;
	tools/*) echo tools ;;
	ui/*) echo ui ;;
	*) echo unknown ;;
	esac
}

# The .c file that implements header h (include/NAME.h), if any.
impl_of() {
	for d in src tools ui engine engine/kernels; do
		[ -f "$d/$1.c" ] && { echo "$d/$1.c"; return; }
	done
	echo ""
}

header_floor() {
	case $1 in
	chat-types | msg) echo ground ;;
	kernels | ops) echo engine ;;
	*)
		c=$(impl_of "$1")
		if [ -n "$c" ]; then file_floor "$c"; else echo unknown; fi
		;;
	esac
}

fail=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in $(find src tools ui engine -name '*.[ch]' 2>/dev/null | sort); do
	case $f in
	*.h) continue ;;
	esac
	ff=$(file_floor "$f")
	stem=$(basename "$f" .c)
	for h in $(sed -n 's/^#include "\([^"]*\)\.h".*/\1/p' "$f"); do
		if [ -f "include/$h.h" ]; then
			hf=$(header_floor "$h")
			echo "$stem $h" >>"$edges"
		elif [ -f "$(dirname "$f")/$h.h" ]; then
			continue # a private header of the same folder
		else
			continue # a header of the kernels folder and the like
		fi
		if [ "$hf" = unknown ]; then
			echo "check-layers: include/$h.h has no floor (add it to header_floor)"
			fail=1
		elif [ "$(floor_rank "$hf")" -gt "$(floor_rank "$ff")" ]; then
			echo "check-layers: $f ($ff) includes $h.h ($hf): an arrow up the floors"
			fail=1
		fi
	done
	# Headers include headers too: a cycle through them is a cycle all the same.
done
for h in include/*.h; do
	stem=$(basename "$h" .h)
	for i in $(sed -n 's/^#include "\([^"]*\)\.h".*/\1/p' "$h"); do
		echo "$stem $i" >>"$edges"
	done
done
# Module-level cycles: tsort names the modules of each loop on stderr.
if ! awk '$1 != $2' "$edges" | tsort >/dev/null 2>"$edges.err"; then
	echo "check-layers: include cycle between modules:" \
		$(sed -n '/loop/d; s/^tsort: //p' "$edges.err")
	fail=1
fi
rm -f "$edges.err"
[ $fail = 0 ] && echo "check-layers: 1 passed, 0 failed"
exit $fail

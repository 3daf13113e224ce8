#!/bin/sh
# check-doc-refs.sh - check that every reference from the code to the
# project's documents points at something that exists.
#
# A reference is written  docs/<page>.md "<Section>"  on one line: the page's
# path from the repository root, one space, and the exact text of one of its
# headings (any level, without the leading #s) in double quotes.  A bare
# docs/<page>.md names the page alone.  Every file of the tree is read except
# docs/ itself, build outputs, .git and the binary test data.
#
# Fails, with one line per problem naming FILE:LINE, when
#   - the page does not exist,
#   - the page has no heading with that text (headings inside ``` blocks do
#     not count),
#   - a quoted section name is not closed on its line,
#   - the code still cites one of the design documents that lived outside the
#     project before docs/ had its own pages (their names are in OLD below).
#
# usage: scripts/check-doc-refs.sh [-C ROOT] [FILE...]
#   ROOT: the tree to check (default: the repository this script is in);
#   FILEs (relative to ROOT): check only these.
# Exit status 0 when all is well, 1 on a problem, 2 on bad usage.
# POSIX sh, find, grep, sed and awk.

root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$1" = "-C" ]; then
	[ -n "$2" ] || { echo "usage: $0 [-C ROOT] [FILE...]" >&2; exit 2; }
	root=$2
	shift 2
fi
cd "$root" || exit 2

# The outside documents, as an extended regex (kept split so this file does
# not match itself).
OLD='(MODEL|UI|PERF|STYLE)'
OLD_RE="(^|[^A-Za-z0-9_./-])$OLD\\.md"
REF_RE='docs/[A-Za-z0-9._-]+\.md'

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT

if [ $# -gt 0 ]; then
	for f in "$@"; do printf '%s\n' "$f"; done >"$tmp/files"
else
	find . \( -path ./docs -o -path ./.git -o -path ./build -o -path ./shared \
		-o -path ./tests/data -o -path ./tests/fuzz \) -prune \
		-o -type f -print | sed 's|^\./||' | sort >"$tmp/files"
fi

# headings PAGE: the heading texts of a markdown page, one a line.
headings() {
	awk '/^```/ { code = !code; next }
	     !code && /^#+[ \t]/ { sub(/^#+[ \t]+/, ""); sub(/[ \t#]*$/, ""); print }' "$1"
}

: >"$tmp/errors"
while IFS= read -r f; do
	[ -f "$f" ] || { echo "$f: no such file" >>"$tmp/errors"; continue; }
	# -I: skip binary files.
	grep -I -n -o -E "$REF_RE( \"[^\"]*\"?)?" "$f" 2>/dev/null | while IFS= read -r hit; do
		line=${hit%%:*}
		ref=${hit#*:}
		doc=${ref%% *}
		if [ ! -f "$doc" ]; then
			echo "$f:$line: $doc: no such document"
			continue
		fi
		[ "$ref" = "$doc" ] && continue
		sec=${ref#* \"}
		case $sec in
		*\") sec=${sec%\"} ;;
		*)
			echo "$f:$line: $doc: the section name must be closed on the same line"
			continue
			;;
		esac
		headings "$doc" | grep -qxF -- "$sec" ||
			echo "$f:$line: $doc has no section \"$sec\""
	done >>"$tmp/errors"
	case $f in docs/*) continue ;; esac # the pages may tell their history
	grep -I -n -E "$OLD_RE" "$f" 2>/dev/null | while IFS= read -r hit; do
		name=$(printf '%s\n' "${hit#*:}" | grep -o -E "$OLD_RE" | head -1 | sed 's/^[^A-Z]//')
		echo "${f}:${hit%%:*}: cites $name, which is not in the project: cite docs/<page>.md \"<Section>\""
	done >>"$tmp/errors"
done <"$tmp/files"

if [ -s "$tmp/errors" ]; then
	cat "$tmp/errors" >&2
	exit 1
fi
exit 0

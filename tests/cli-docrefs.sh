#!/bin/sh
# cli-docrefs.sh - scripts/check-doc-refs.sh passes on the real tree, and on
# a made-up tree fails naming FILE:LINE of each bad reference: a missing
# page, a missing section, a section name not closed on its line, and a
# citation of a design document from outside the project.
# Run from the repository root.
pass=0
fail=0
tmp=$(mktemp -d)
check=scripts/check-doc-refs.sh

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/  | /' "$tmp/err"; }

if sh $check >"$tmp/out" 2>"$tmp/err"; then ok "the real tree passes"; else bad "the real tree"; fi

# A tree of our own.  References are put together from pieces so that this
# file holds none itself (the check reads tests/ too).
d=docs
old=MODEL
mkdir -p "$tmp/t/$d" "$tmp/t/src"
printf '# Guide\n\n## Good section\n\n```sh\n# Not a heading\n```\n' >"$tmp/t/$d/guide.md"
{
	printf '/* fine: %s/guide.md "Good section" */\n' $d
	printf '/* fine: %s/guide.md alone */\n' $d
	printf '/* no page: %s/nosuch.md "Good section" */\n' $d
	printf '/* no section: %s/guide.md "Missing section" */\n' $d
	printf '/* code is no heading: %s/guide.md "Not a heading" */\n' $d
	printf '/* split: %s/guide.md "Good\n * section" */\n' $d
	printf '/* old: %s.md section 2 */\n' $old
} >"$tmp/t/src/a.c"
printf 'Mentioning %s.md here is history.\n' $old >>"$tmp/t/$d/guide.md"

sh $check -C "$tmp/t" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 1 ] && ok "a bad tree fails (exit 1)" || bad "a bad tree: exit $rc"
# expect LINE TEXT: one error line names src/a.c:LINE and says TEXT.
expect() {
	if grep -q "^src/a\.c:$1: .*$2" "$tmp/err"; then ok "line $1: $2"; else bad "line $1: $2"; fi
}
expect 3 "no such document"
expect 4 'has no section "Missing section"'
expect 5 'has no section "Not a heading"'
expect 6 "closed on the same line"
expect 8 "cites $old\\.md"
if grep -q '^src/a\.c:[12]:' "$tmp/err"; then bad "good references pass"; else ok "good references pass"; fi
if grep -q '^docs/' "$tmp/err"; then bad "docs/ may mention history"; else ok "docs/ may mention history"; fi
[ "$(wc -l <"$tmp/err")" -eq 5 ] && ok "one line per problem" || bad "one line per problem"

# Only the files named are checked when some are.
printf '/* fine: %s/guide.md "Good section" */\n' $d >"$tmp/t/src/b.c"
if sh $check -C "$tmp/t" src/b.c "$d/guide.md" >"$tmp/out" 2>"$tmp/err"; then
	ok "FILE arguments: good files pass"
else
	bad "FILE arguments: good files pass"
fi
if sh $check -C "$tmp/t" src/b.c src/a.c >"$tmp/out" 2>"$tmp/err"; then
	bad "FILE arguments: a bad file fails"
else
	ok "FILE arguments: a bad file fails"
fi

rm -rf "$tmp"
echo "cli-docrefs: $pass passed, $fail failed"
[ "$fail" = 0 ]

# model-lib.sh - what the scripts that build altered model directories share
# (sourced, not run): pass/fail counters, a temporary directory removed at
# exit, and copy NAME, a directory of links to tiny's files.  Callers set T
# to the model directory first.  Run from the repository root.
pass=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# copy NAME: a directory of links to $T's files; prints its path.
copy() {
	d=$tmp/$1
	mkdir -p "$d"
	for x in "$T"/*; do ln -s "$PWD/$x" "$d/"; done
	echo "$d"
}

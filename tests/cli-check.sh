#!/bin/sh
# cli-check.sh - `qnext check` on copies of the tiny model in a scratch
# directory: a recorded manifest, a flipped byte, truncated and missing
# shards, a fake Hugging Face cache (good blobs, a corrupt one, a dangling
# link), a manifest kept in the cache, no reference at all, and the exit
# statuses.  Run from the repository root.
Q=${QNEXT_BIN:-./qnext}
pass=0
fail=0
tmp=$(mktemp -d)
out=$tmp/out
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
S1=model-00001-of-00002.safetensors
S2=model-00002-of-00002.safetensors

check() { # name, expected status, command...
	name=$1 want=$2
	shift 2
	"$@" >"$out" 2>&1
	got=$?
	if [ "$got" = "$want" ]; then
		pass=$((pass + 1))
		echo "ok   $name"
	else
		fail=$((fail + 1))
		echo "FAIL $name (exit $got, wanted $want)"
		cat "$out"
	fi
}

has() { # name, regular expression expected in the last output
	if grep -q -- "$2" "$out"; then pass=$((pass + 1)); else
		fail=$((fail + 1)); echo "FAIL $1: output lacks '$2'"; cat "$out"; fi
}

lacks() { # name, regular expression not expected in the last output
	if grep -q -- "$2" "$out"; then
		fail=$((fail + 1)); echo "FAIL $1: output has '$2'"; cat "$out"; else
		pass=$((pass + 1)); fi
}

truth() { # name, command that must succeed
	name=$1
	shift
	if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $name"; fi
}

fresh() { # a clean copy of the tiny model in $tmp/m
	chmod -R u+w "$tmp/m" 2>/dev/null
	rm -rf "$tmp/m"
	cp -R share/tiny "$tmp/m"
}

flip() { # file, offset: add one to the byte there
	b=$(dd if="$1" bs=1 skip="$2" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "\\$(printf %o $(((b + 1) % 256)))" |
		dd of="$1" bs=1 seek="$2" count=1 conv=notrunc 2>/dev/null
}

size() { wc -c <"$1" | tr -d ' '; }

# A manifest recorded with --write, then verified.
fresh
check "--write records the hashes" 0 $Q check -m "$tmp/m" --write --threads 2
has "manifest path named" "wrote [0-9]* hashes to $tmp/m/qnext-sha256.txt"
has "no reference yet" "^??  $S1"
truth "manifest exists" test -f "$tmp/m/qnext-sha256.txt"
check "sha256sum reads the manifest" 0 sh -c "cd '$tmp/m' && sha256sum -c --quiet qnext-sha256.txt"
check "verified against the manifest" 0 $Q check -m "$tmp/m"
has "shard 1 ok" "^ok  $S1 .*MB\$"
has "shard 2 ok" "^ok  $S2 "
has "json ok" "^ok  config.json "
has "structure ok" "^ok  structure: 2 shards"
has "model bound" "^ok  model: "
has "summary" "^check: ok: .*; structure ok\$"
lacks "nothing unverified" "^??"
check "one thread" 0 $Q check -m "$tmp/m" --threads 1 -q
lacks "quiet: no ok lines" "^ok "
has "quiet: summary" "^check: ok"

# One byte flipped in the middle of a shard's data.
flip "$tmp/m/$S2" $(($(size "$tmp/m/$S2") / 2))
check "flipped byte" 1 $Q check -m "$tmp/m"
has "bad shard named" "^BAD $S2: SHA-256 mismatch (expected [0-9a-f]*\.\.\. from .*qnext-sha256.txt, got [0-9a-f]*\.\.\.)"
has "download hint" "delete it and download it again (hf download .* --include $S2"
has "other shard ok" "^ok  $S1 "
has "summary counts it" "^check: FAILED: .*1 BAD"
check "--write refuses a bad checkpoint" 1 $Q check -m "$tmp/m" --write
has "not recorded" "not recording hashes"
check "quiet still names the bad file" 1 $Q check -m "$tmp/m" -q
has "quiet bad" "^BAD $S2"

# A truncated shard, past its header and inside it.
fresh
check "record" 0 $Q check -m "$tmp/m" --write
n=$(size "$tmp/m/$S1")
truncate -s $((n / 2)) "$tmp/m/$S1"
check "truncated shard" 1 $Q check -m "$tmp/m"
has "truncated named" "^TRUNCATED $S1 (size $((n / 2)), header says $n)"
has "structure names the file" "^BAD structure: .*$S1"
has "other shard still ok" "^ok  $S2 "
truncate -s 100 "$tmp/m/$S1"
check "truncated inside the header" 1 $Q check -m "$tmp/m"
has "lower bound" "^TRUNCATED $S1 (size 100, header says at least "

# Missing files: a shard the index names, a JSON file the manifest lists.
fresh
check "record" 0 $Q check -m "$tmp/m" --write
rm "$tmp/m/$S2" "$tmp/m/generation_config.json"
check "missing files" 1 $Q check -m "$tmp/m"
has "missing shard" "^MISSING $S2: model.safetensors.index.json names it"
has "missing json" "^MISSING generation_config.json: .*qnext-sha256.txt lists it"

# A malformed manifest.
fresh
echo "not a hash line" >"$tmp/m/qnext-sha256.txt"
check "malformed manifest" 1 $Q check -m "$tmp/m"
has "line named" "qnext-sha256.txt:1: not a"

# No reference at all: hashes printed, exit 0.
fresh
check "nothing to compare against" 0 $Q check -m "$tmp/m"
has "note" "nothing to compare against"
has "how to record" "check -m $tmp/m --write"
has "hash printed" "^??  $S1 .* sha256 [0-9a-f]\{64\}\$"
sum=$(sha256sum "$tmp/m/$S1" | cut -c1-64)
has "hash is sha256sum's" "sha256 $sum\$"

# A manifest kept in the cache (where a read-only directory's goes) is found.
fresh
check "record" 0 $Q check -m "$tmp/m" --write
key=$(printf %s "$(cd "$tmp/m" && pwd -P)" | sha256sum | cut -c1-16)
mkdir -p "$tmp/cache/qnext/manifests"
mv "$tmp/m/qnext-sha256.txt" "$tmp/cache/qnext/manifests/m-$key.txt"
check "manifest found in the cache" 0 env XDG_CACHE_HOME="$tmp/cache" $Q check -m "$tmp/m"
has "verified from the cache" "^ok  $S1 "
flip "$tmp/m/$S1" 5000
check "cache manifest catches a flip" 1 env XDG_CACHE_HOME="$tmp/cache" $Q check -m "$tmp/m"
has "source is the cache manifest" "^BAD $S1: .* from $tmp/cache/qnext/manifests/m-$key.txt"
if [ "$(id -u)" != 0 ]; then # root writes anywhere, so only a user can see this
	fresh
	chmod a-w "$tmp/m"
	check "read-only dir records in the cache" 0 \
		env XDG_CACHE_HOME="$tmp/cache2" $Q check -m "$tmp/m" --write
	has "cache path" "hashes to $tmp/cache2/qnext/manifests/m-"
	check "and verifies from there" 0 env XDG_CACHE_HOME="$tmp/cache2" $Q check -m "$tmp/m"
	lacks "all verified" "^??"
	chmod u+w "$tmp/m"
fi

# A fake Hugging Face cache: snapshots/REV/FILE -> ../../blobs/HASH.  LFS
# files are named by their SHA-256, small git files by a 40-hex SHA-1.
hub=$tmp/hub/models--Org--Tiny
snap=$hub/snapshots/0123abcd
mkdir -p "$hub/blobs" "$snap"
for f in share/tiny/*; do
	case $f in
	*.safetensors | */tokenizer.json) h=$(sha256sum "$f" | cut -c1-64) ;;
	*) h=$(sha1sum "$f" | cut -c1-40) ;;
	esac
	cp "$f" "$hub/blobs/$h"
	ln -s "../../blobs/$h" "$snap/$(basename "$f")"
done
check "cache snapshot verified by blob names" 0 $Q check -m "$snap"
has "shard verified" "^ok  $S1 "
has "lfs json verified" "^ok  tokenizer.json "
has "git file parsed only" "^--  config.json .*parsed only"
lacks "no note" "nothing to compare against"
truth "no manifest written" test ! -e "$snap/qnext-sha256.txt"
b2=$(sha256sum "$snap/$S2" | cut -c1-64)
flip "$hub/blobs/$b2" 3000000
check "blob that does not match its name" 1 $Q check -m "$snap"
has "bad blob named" "^BAD $S2: SHA-256 mismatch (expected ${b2%"${b2#????????????}"}\.\.\. from the name of the cache blob"
has "blob to delete" "delete the blob it links to ($tmp/hub/models--Org--Tiny/blobs/$b2)"
has "repository from the cache path" "hf download Org/Tiny --include $S2)"
g=$(sha1sum share/tiny/generation_config.json | cut -c1-40)
echo '{"eos_token_id": [' >"$hub/blobs/$g"
check "git-stored json that does not parse" 1 $Q check -m "$snap"
has "bad json named" "^BAD generation_config.json: not valid JSON (line "
b1=$(sha256sum "share/tiny/$S1" | cut -c1-64)
rm "$hub/blobs/$b1"
check "dangling link" 1 $Q check -m "$snap"
has "missing blob" "^MISSING $S1: it links to a blob that is not there"

# Usage and directory errors.
check "missing directory" 1 $Q check -m "$tmp/nonexistent"
has "directory named" "$tmp/nonexistent: No such file or directory"
check "not a directory" 1 $Q check -m "$tmp/out"
has "not a directory named" "not a directory"
check "unknown flag" 2 $Q check --frobnicate
check "bad thread count" 2 $Q check -m "$tmp/m" --threads 0
check "stray argument" 2 $Q check -m "$tmp/m" extra
check "--help" 0 $Q check --help
has "usage line" "usage: qnext check"

echo "cli-check: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/bin/sh
# cli-plan.sh - `qnext plan` and `qnext bench-hw` from the command line: the
# plan of the golden models, bench-hw's three output forms, hw.json written
# under a temporary XDG_CACHE_HOME and read back by plan, and exit statuses.
# Run from the repository root.
Q=${QNEXT_BIN:-./qnext}
pass=0
fail=0
out=$(mktemp)
cache=$(mktemp -d)
XDG_CACHE_HOME=$cache
export XDG_CACHE_HOME

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

has() { # name, text expected in the last output
	if grep -q -- "$2" "$out"; then pass=$((pass + 1)); else
		fail=$((fail + 1)); echo "FAIL $1: output lacks '$2'"; cat "$out"; fi
}

check "plan tiny" 0 $Q plan -m share/tiny
has "plan groups" "routed experts *int4 g128"
has "plan mixed formats" "int8 g128 + bf16"
has "plan fits" "fits in RAM      yes"
has "plan default context" "40960-token context"
has "plan unmeasured" "not measured: run qnext bench-hw"
check "plan small --json --ctx 4096" 0 $Q plan -m tests/data/small --json --ctx 4096
has "plan json decode bytes" '"decode_bytes": 6988300'
has "plan json kv" '"kv_bytes": 2097152'
has "plan json swap" '"swap_needed": false'
check "plan bad --ctx" 2 $Q plan -m share/tiny --ctx 5
check "plan extra argument" 2 $Q plan -m share/tiny extra
check "plan missing model" 1 $Q plan -m /nonexistent
has "plan names the directory" "/nonexistent"

check "bench-hw tiny --json" 0 $Q bench-hw -m share/tiny --threads 1 --json
has "bench-hw json bandwidth" '"read_gbs_all"'
has "bench-hw json model" '"decode_bytes": 2494726'
has "bench-hw json disk" '"direct"'
check "hw.json written" 0 test -s "$cache/qnext/hw.json"
check "plan reads hw.json" 0 $Q plan -m share/tiny
has "plan measured bandwidth" "on 1 thread, .* GB/s on 1 thread (qnext bench-hw"
has "plan predicts" "tok/s ceiling"
check "bench-hw --markdown --measured" 0 \
	$Q bench-hw -m share/tiny --threads 1 --markdown --measured 12.5
has "markdown row" '^| .* cores, .*) | [0-9]* GiB | [0-9.]* / [0-9.]* | [0-9.]* | 12.5 |$'
check "bench-hw text" 0 $Q bench-hw -m share/tiny --threads 1
has "bench-hw text memory" "memory read"
has "bench-hw text saved" "saved        $cache/qnext/hw.json"
check "bench-hw --json --markdown" 2 $Q bench-hw --json --markdown
check "bench-hw --threads 0" 2 $Q bench-hw --threads 0
check "bench-hw missing model" 1 $Q bench-hw -m /nonexistent --threads 1
check "bench-hw --help" 0 $Q bench-hw --help
check "usage lists plan" 0 $Q --help
has "usage plan line" "qnext plan"
has "usage bench-hw line" "qnext bench-hw"
rm -rf "$cache" "$out"
echo "cli-plan: $pass passed, $fail failed"
[ "$fail" = 0 ]

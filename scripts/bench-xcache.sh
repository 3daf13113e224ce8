#!/bin/bash
# bench-xcache.sh - the expert cache against the plain mapping, as measured for
# docs/BENCHMARKS.md ("Models larger than RAM").  Needs root: it drops the page
# cache before every run (echo 1 > /proc/sys/vm/drop_caches), and in cgroup mode
# runs qnext in a v1 memory cgroup (/sys/fs/cgroup/memory/qnext-bench).
#
#   scripts/bench-xcache.sh ab MODEL            # alternate --expert-cache off/auto
#   scripts/bench-xcache.sh cgroup MODEL 6500M  # the same inside a memory cgroup
#   scripts/bench-xcache.sh pressure MODEL      # auto, while another process takes 8 GB
#
# Environment: ROUNDS (1), PROMPT (16), GEN (32), REPS (2: the first run cold, the
# second warm), VARIANTS ("off auto"), QNEXT (./qnext).
set -u
mode=${1:?mode: ab, cgroup or pressure}
model=${2:?model directory}
Q=${QNEXT:-./qnext}
export OPENBLAS_NUM_THREADS=1

drop() { sync; echo 1 > /proc/sys/vm/drop_caches; }
run() { # cache mode; in the cgroup when one is set up
	if [ -n "${CG:-}" ]; then
		(echo $BASHPID > "$CG/tasks"; exec "$Q" bench -m "$model" --prompt "${PROMPT:-16}" \
			--gen "${GEN:-32}" --reps "${REPS:-2}" --threads 2 --expert-cache "$1")
	else
		"$Q" bench -m "$model" --prompt "${PROMPT:-16}" --gen "${GEN:-32}" \
			--reps "${REPS:-2}" --threads 2 --expert-cache "$1"
	fi
}
oom() { awk '/^oom_kill /{print $2}' /proc/vmstat; }

case $mode in
cgroup)
	CG=/sys/fs/cgroup/memory/qnext-bench
	mkdir -p "$CG" && echo "${3:?limit, e.g. 6500M}" >"$CG/memory.limit_in_bytes" || exit 1
	;&
ab)
	for r in $(seq "${ROUNDS:-1}"); do
		for x in ${VARIANTS:-off auto}; do
			echo "== round $r --expert-cache $x $(date +%T)"
			drop
			o0=$(oom)
			run "$x" 2>&1 | grep -vE '^model|^kernels|^ready'
			echo "oom kills: $(( $(oom) - o0 ))"
		done
	done
	;;
pressure)
	drop
	o0=$(oom)
	GEN=${GEN:-96} REPS=1 run auto >"${TMPDIR:-/tmp}/bench-xcache.out" 2>&1 &
	bp=$!
	sleep 60
	echo "$(date +%T) taking 8 GB; $(grep MemAvailable /proc/meminfo)"
	python3 -c "
import time
a = b'\x01' * (8 << 30)
for i in range(8):
    time.sleep(5)
    print(time.strftime('%T'), open('/proc/meminfo').read().split('\n')[2], flush=True)
" && echo "the 8 GB process ran to its end"
	wait $bp
	echo "qnext bench exit $?; oom kills: $(( $(oom) - o0 ))"
	cat "${TMPDIR:-/tmp}/bench-xcache.out"
	;;
*)
	echo "unknown mode $mode" >&2
	exit 2
	;;
esac

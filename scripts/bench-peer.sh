#!/bin/bash
# bench-peer.sh - qnext and llama.cpp side by side on the same weights, in one
# interleaved run, one Markdown table at the end.  `make bench-peer` calls it;
# docs/BENCHMARKS.md ("Side by side with llama.cpp") says how to get llama.cpp
# and make the GGUFs.  Settings come from the environment:
#
#   QNEXT_BIN   the qnext binary (default: ./qnext)
#   PEER_MODEL  qnext's checkpoint, the one the GGUFs were made from
#   LLAMA_CPP   llama.cpp's source tree or build directory: llama-bench is
#               looked for in LLAMA_CPP/build/bin, LLAMA_CPP/bin, LLAMA_CPP
#   PEER_GGUFS  GGUF files, separated by spaces
#   ROUNDS      rounds (default 3); odd rounds run qnext then the GGUFs in
#               the order given, even rounds the reverse (A B C / C B A), so
#               drift in the machine's load lands on every engine
#   THREADS     thread counts (default: "1 N", N = online CPUs)
#   REPS        repetitions inside each engine run (default 3; each engine
#               reports their median)
#   GEN         decoded tokens per repetition (default 32)
#   BUSY        1: one CPU-bound process (a shell loop) runs beside every
#               engine run, started after the weights are read and stopped
#               after the run
#   PEER_OUT    directory for the raw results (default:
#               build/bench-peer/DATE-TIME)
#
# Per round, each engine's weight files are read once (cat > /dev/null: the
# checkpoint and the GGUFs together do not fit in the page cache of a small
# machine), then for each thread count:
#   qnext      bench --prompt 128 --gen GEN (prefill 128, decode, its stream
#              read, its bytes per token), bench --prompt 512 --gen 1
#              (prefill 512)
#   llama.cpp  qnext bench-hw (the same stream-read measure, just before),
#              llama-bench -p 128,512 -n GEN
# Bytes read per decoded token for a GGUF are counted from its tensor table
# the way qnext counts its own: every tensor, except the routed experts
# (*_exps: top-k / n_expert of them) and token_embd (one row).
#
# Exits 0 without measuring, saying what is missing, when llama.cpp, the
# checkpoint or every GGUF is absent; 1 when a run fails.
set -u

Q=${QNEXT_BIN:-./qnext}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-"1 $(nproc)"}
REPS=${REPS:-3}
GEN=${GEN:-32}
BUSY=${BUSY:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOC='docs/BENCHMARKS.md, "Side by side with llama.cpp (make bench-peer)"'

skip() {
	echo "bench-peer: skipped: $*" >&2
	echo "bench-peer: see $DOC" >&2
	exit 0
}

# ---- what is there ----------------------------------------------------------

[ -x "$Q" ] || { echo "bench-peer: $Q: no qnext binary (QNEXT_BIN)" >&2; exit 1; }
command -v python3 >/dev/null || skip "python3 is needed to read the results (apt-get install python3)"
LLAMA_BENCH=
for d in "${LLAMA_CPP:-}/build/bin" "${LLAMA_CPP:-}/bin" "${LLAMA_CPP:-}"; do
	if [ -n "${LLAMA_CPP:-}" ] && [ -x "$d/llama-bench" ]; then LLAMA_BENCH=$d/llama-bench; break; fi
done
[ -n "${LLAMA_CPP:-}" ] || skip "LLAMA_CPP is not set (llama.cpp's tree or build directory)"
[ -n "$LLAMA_BENCH" ] || skip "no llama-bench in $LLAMA_CPP/build/bin, $LLAMA_CPP/bin or $LLAMA_CPP (build llama.cpp first)"
[ -n "${PEER_MODEL:-}" ] || skip "PEER_MODEL is not set (the qnext checkpoint the GGUFs were made from)"
[ -f "$PEER_MODEL/config.json" ] || skip "$PEER_MODEL has no config.json (make it with qnext mkmodel)"
ggufs=()
for g in ${PEER_GGUFS:-}; do
	if [ -f "$g" ]; then ggufs+=("$g"); else echo "bench-peer: $g: no such file; left out" >&2; fi
done
[ ${#ggufs[@]} -gt 0 ] || skip "no GGUF file (PEER_GGUFS='${PEER_GGUFS:-}')"
for v in "$ROUNDS" "$REPS" "$GEN" $THREADS; do
	case $v in '' | *[!0-9]* | 0) echo "bench-peer: '$v' is not a positive integer" >&2; exit 2 ;; esac
done

OUT=${PEER_OUT:-$ROOT/build/bench-peer/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/cache" || exit 1
names=(qnext)
paths=("$PEER_MODEL")
for g in "${ggufs[@]}"; do
	names+=("llama.cpp")
	paths+=("$g")
done
n_eng=${#paths[@]}

# ---- running ------------------------------------------------------------------

# The weight files of engine i, read once into the page cache.
warm() {
	local p=${paths[$1]} t0=$SECONDS

	if [ "$1" = 0 ]; then cat "$p"/*.safetensors >/dev/null; else cat "$p" >/dev/null; fi
	echo "  read ${names[$1]} $(basename "$p") in $((SECONDS - t0)) s" >&2
}

busy_pid=
busy_start() {
	[ "$BUSY" = 1 ] || return 0
	sh -c 'while :; do :; done' &
	busy_pid=$!
}
busy_stop() {
	[ -n "$busy_pid" ] || return 0
	kill "$busy_pid" 2>/dev/null
	wait "$busy_pid" 2>/dev/null
	busy_pid=
}
trap 'busy_stop; exit 130' INT TERM

failed=0
# run ROUND ENGINE THREADS: the raw results go to $OUT/rR-eI-tT.*
run() {
	local r=$1 i=$2 t=$3 f="$OUT/r$1-e$2-t$3"

	echo "[$(date +%T)] round $r: ${names[$i]} $(basename "${paths[$i]}"), $t thread(s)," \
		"load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	busy_start
	if [ "$i" = 0 ]; then
		OPENBLAS_NUM_THREADS=1 "$Q" bench -m "${paths[0]}" --prompt 128 --gen "$GEN" \
			--reps "$REPS" --threads "$t" --json >"$f.q128.json" 2>"$f.err" &&
			OPENBLAS_NUM_THREADS=1 "$Q" bench -m "${paths[0]}" --prompt 512 --gen 1 \
				--reps "$REPS" --threads "$t" --json >"$f.q512.json" 2>>"$f.err"
	else
		XDG_CACHE_HOME=$OUT/cache "$Q" bench-hw -m "$ROOT/tests/data/small" --threads "$t" \
			--json >"$f.hw.json" 2>"$f.err" &&
			"$LLAMA_BENCH" -m "${paths[$i]}" -t "$t" -p 128,512 -n "$GEN" -r "$REPS" \
				-o json >"$f.llama.json" 2>>"$f.err"
	fi
	local rc=$?
	busy_stop
	if [ $rc != 0 ]; then
		failed=1
		echo "bench-peer: the run failed (exit $rc); $f.err:" >&2
		tail -5 "$f.err" >&2
	fi
}

{
	echo "date: $(date -Is)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"
	echo "memory: $(free -g | awk '/^Mem:/ { print $2 }') GiB"
	echo "qnext: $("$Q" --version)$(c=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) &&
		echo ", commit $c")"
	echo "llama.cpp: $("$LLAMA_BENCH" --version 2>&1 | grep -m1 -i 'version' || echo unknown)"
	echo "rounds $ROUNDS, threads $THREADS, reps $REPS, gen $GEN, busy ${BUSY:-0}"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

for r in $(seq 1 "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then order=$(seq 0 $((n_eng - 1))); else order=$(seq $((n_eng - 1)) -1 0); fi
	for i in $order; do
		warm "$i"
		for t in $THREADS; do run "$r" "$i" "$t"; done
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"

# ---- the table ------------------------------------------------------------------

printf '%s\n' "${paths[@]}" >"$OUT/engines.txt"
OUT=$OUT ROUNDS=$ROUNDS THREADS=$THREADS GEN=$GEN BUSY=${BUSY:-0} python3 - <<'EOF' | tee "$OUT/table.md"
import json, os, statistics, struct

out, rounds, gen = os.environ["OUT"], int(os.environ["ROUNDS"]), int(os.environ["GEN"])
threads = [int(t) for t in os.environ["THREADS"].split()]
paths = open(os.path.join(out, "engines.txt")).read().splitlines()


def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def gguf_bytes_per_token(path):
    """Bytes one decoded token reads, from the GGUF's tensor table."""
    with open(path, "rb") as f:
        def rd(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

        def string():
            return f.read(rd("Q")).decode("utf-8", "replace")

        sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

        def value(t):
            if t == 8:
                return string()
            if t == 9:
                et, n = rd("I"), rd("Q")
                return [value(et) for _ in range(n)]
            return rd(sizes[t])

        if f.read(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        rd("I")  # version
        n_tensors, n_kv = rd("Q"), rd("Q")
        kv = {}
        for _ in range(n_kv):
            k = string()
            kv[k] = value(rd("I"))
        infos = []
        for _ in range(n_tensors):
            name = string()
            dims = [rd("Q") for _ in range(rd("I"))]
            rd("I")  # type
            infos.append((rd("Q"), name, dims))
        align = kv.get("general.alignment", 32)
        data = (f.tell() + align - 1) // align * align
        end = os.path.getsize(path) - data
    arch = kv["general.architecture"]
    n_exp, k_exp = kv.get(f"{arch}.expert_count", 1), kv.get(f"{arch}.expert_used_count", 1)
    infos.sort()
    total = 0.0
    for j, (off, name, dims) in enumerate(infos):
        # Each tensor runs to the next one's offset (alignment padding included, under 32 bytes).
        size = (infos[j + 1][0] if j + 1 < len(infos) else end) - off
        if name.startswith("token_embd."):
            size /= dims[1] if len(dims) > 1 else 1
        elif "_exps." in name:
            size *= k_exp / n_exp
        total += size
    return total


def llama_ts(res, n_prompt, n_gen):
    for t in res or []:
        if t.get("n_prompt") == n_prompt and t.get("n_gen") == n_gen:
            return statistics.median(t["samples_ts"]) if t.get("samples_ts") else t["avg_ts"]
    return None


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


rows = []
for i, p in enumerate(paths):
    if i == 0:
        bpt = None
    else:
        try:
            bpt = gguf_bytes_per_token(p)
        except (OSError, ValueError, KeyError, struct.error) as e:
            bpt = None
            print(f"(bytes per token of {p}: {e})")
    for t in threads:
        pp128, pp512, tg, stream = [], [], [], []
        for r in range(1, rounds + 1):
            f = f"r{r}-e{i}-t{t}"
            if i == 0:
                a, b = load(f + ".q128.json"), load(f + ".q512.json")
                pp128.append(a and a["prefill_tok_s"])
                tg.append(a and a["decode_tok_s"])
                stream.append(a and a["stream_read_gb_s"])
                pp512.append(b and b["prefill_tok_s"])
                bpt = bpt or (a and a["bytes_per_token"])
            else:
                res, hw = load(f + ".llama.json"), load(f + ".hw.json")
                pp128.append(llama_ts(res, 128, 0))
                pp512.append(llama_ts(res, 512, 0))
                tg.append(llama_ts(res, 0, gen))
                stream.append(hw and hw["read_gbs_all"])
        weights = os.path.basename(p.rstrip("/"))
        rows.append(dict(engine="qnext" if i == 0 else "llama.cpp", weights=weights, t=t, bpt=bpt,
                         stream=med(stream), pp128=med(pp128), pp512=med(pp512), tg=med(tg),
                         tg_all=[x for x in tg if x is not None]))


def f2(x, d=2):
    return "failed" if x is None else f"{x:.{d}f}"


print()
for line in open(os.path.join(out, "env.txt")).read().splitlines():
    print(f"- {line}")
print()
print(f"Medians over {rounds} round(s) (each engine's figure per round: the median of its reps); "
      f"decode: {gen} tokens" + ("; one busy process beside every run" if os.environ["BUSY"] == "1" else "") + ".")
print()
print("| engine | weights | threads | GB read/token | stream read GB/s | prefill tok/s (128) "
      "| prefill tok/s (512) | decode tok/s | weights GB/s | % of stream | qnext decode ÷ this |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for w in rows:
    q = next(x for x in rows if x["engine"] == "qnext" and x["t"] == w["t"])
    gbs = w["tg"] * w["bpt"] / 1e9 if w["tg"] and w["bpt"] else None
    pct = f"{100 * gbs / w['stream']:.0f} %" if gbs and w["stream"] else "-"
    ratio = f"{q['tg'] / w['tg']:.2f}" if q["tg"] and w["tg"] else "-"
    spread = (f" ({min(w['tg_all']):.2f}-{max(w['tg_all']):.2f})" if len(w["tg_all"]) > 1 else "")
    print(f"| {w['engine']} | {w['weights']} | {w['t']} | {f2(w['bpt'] and w['bpt'] / 1e9, 3)} "
          f"| {f2(w['stream'], 1)} | {f2(w['pp128'])} | {f2(w['pp512'])} | {f2(w['tg'])}{spread} "
          f"| {f2(gbs, 1)} | {pct} | {ratio} |")
EOF
echo "bench-peer: raw results in $OUT" >&2
exit $failed

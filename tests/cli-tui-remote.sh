#!/bin/sh
# cli-tui-remote.sh - the chat on a remote engine, both sides real: `qnext
# serve` on the tiny model (and on a copy that never ends its turn) with an
# API key, and `qnext --remote` against it in tmux, in line mode and with
# -p.  Checks: the network row replaces the memory row, answers stream
# with the thinking panel, a stop aborts the request (the server logs the
# hang-up and stops generating), /continue goes on with a cut-off answer in
# the same entry, the conversation is saved under where it ran, and a wrong
# key or a dead server is one clear line.  Run from the
# repository root.
. tests/tui-lib.sh

pids=""
# serve NAME DIR: a server with key k on a free port; sets $port.
serve() {
	"$Q" serve -m "$2" --port 0 --api-key k >"$tmp/$1.out" 2>"$tmp/$1.err" &
	pids="$pids $!"
	port=""
	for _ in $(seq 150); do
		port=$(sed -n 's|.*http://[^ ]*:\([0-9][0-9]*\)/v1.*|\1|p' "$tmp/$1.out")
		[ -n "$port" ] && return 0
		sleep 0.1
	done
	return 1
}
stop_servers() { for p in $pids; do kill $p 2>/dev/null; done; }

serve tiny share/tiny || { bad "qnext serve starts"; cat "$tmp/tiny.err"; stop_servers; finish; exit 1; }
url="http://127.0.0.1:$port"
serve endless "$tmp/endless" || { bad "qnext serve (endless) starts"; stop_servers; finish; exit 1; }
url_endless="http://127.0.0.1:$port"

# ---- the full-screen chat --------------------------------------------------
start tiny "--remote $url --api-key k --max-tokens 64"
expect "network row names the server" "Net tiny at $url (remote)"
screen | grep -q "Mem\[" && bad "memory row still shown" || ok "no memory gauge for a remote engine"
send_line "hello there"
expect "answer ends" "token limit\|end of turn"
expect "figures from the server" "decode .* tok/s, ttft"
expect "thinking panel summary" "thought for"
quit_ok "quit the remote chat"
# Saved like a local conversation, under where it ran.
"$Q" export 1 --format json >"$tmp/export.json" 2>&1
if grep -q "\"model\": *\"tiny at $url (remote)\"" "$tmp/export.json" &&
	grep -q '"hello there"' "$tmp/export.json"; then
	ok "saved with where it ran"
else
	bad "saved with where it ran"
	sed 's/^/  | /' "$tmp/export.json" | head -20
fi

# ---- a stop aborts the request ----------------------------------------------
start endless "--remote $url_endless --api-key k"
wait_for "Net endless" || bad "endless server reached"
send_line "go on forever"
if wait_for "streaming" 150; then ok "request streams"; else bad "request streams"; fi
$T send-keys C-c
expect "stop ends the turn" " - stopped"
for _ in $(seq 50); do grep -q "(client gone)" "$tmp/endless.err" && break; sleep 0.1; done
if grep -q "stopped (client gone)" "$tmp/endless.err"; then ok "server saw the hang-up and stopped"
else bad "server saw the hang-up"; sed 's/^/  | /' "$tmp/endless.err"; fi
quit_ok "quit after the stop"

# ---- /continue: vLLM's continue_final_message, kept by qnext serve ------------------------
# The think budget goes too (thinking_token_budget), so the 8 tokens end inside the answer.
fresh_history continue
start endless "--remote $url_endless --api-key k --max-tokens 8 --think-budget 3 --seed 5"
wait_for "Net endless" || bad "endless server reached (/continue)"
send_line "Hi"
expect "remote: cut off at 8 tokens" "8 tokens, .* token limit"
$Q export 1 --format json >"$tmp/c1.json" 2>&1
send_line "/continue"
expect "remote /continue: 16 tokens in the same entry" "16 tokens (continued)"
n=$(screen | grep -c "^qnext$")
[ "$n" = 1 ] && ok "remote /continue: one answer entry" || bad "remote /continue: entries $n"
$Q export 1 --format json >"$tmp/c2.json" 2>&1
if python3 - "$tmp/c1.json" "$tmp/c2.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["messages"][1] for p in sys.argv[1:3])
# The answer grew from its first part; the thought stayed as it was (a continued answer is
# all answer, whatever the server labels it).
ok = (len(b["content"]) > len(a["content"]) and b["content"].startswith(a["content"]) and
      b.get("reasoning") == a.get("reasoning") and len(a["content"]) > 0)
sys.exit(0 if ok else 1)
PY
then ok "remote /continue: the stored answer is the first part and more"
else bad "remote /continue: stored answer"; cat "$tmp/c1.json" "$tmp/c2.json" | head -40; fi
grep -q "stream continued: .* 8 generated" "$tmp/endless.err" &&
	ok "remote /continue: the server went on with the message" ||
	{ bad "remote /continue: no continued request"; sed 's/^/  | /' "$tmp/endless.err"; }
quit_ok "remote /continue: quit"
export XDG_DATA_HOME="$tmp/data" # the first chat's history again

# ---- line mode and -p ----------------------------------------------------------
if "$Q" --remote "$url" --api-key k -m tiny -p "Hi" --max-tokens 6 --temp 0 --thinking \
	>"$tmp/p.out" 2>"$tmp/p.err" && grep -q "(6 tokens)" "$tmp/p.err"; then
	ok "-p against the server: stats from usage"
else
	bad "-p against the server"; sed 's/^/  | /' "$tmp/p.err"
fi
QNEXT_API_KEY=k "$Q" --remote "$url" -m tiny -p "Hi" --max-tokens 3 -q >/dev/null 2>"$tmp/env.err" &&
	ok "QNEXT_API_KEY is sent" || { bad "QNEXT_API_KEY"; cat "$tmp/env.err"; }
printf 'one\ntwo\n' | "$Q" chat --plain --remote "$url" --api-key k -m tiny --max-tokens 3 \
	>"$tmp/plain.out" 2>"$tmp/plain.err"
[ "$(grep -c 'prompt .* tokens' "$tmp/plain.err")" = 2 ] && ok "line-mode chat, two turns" ||
	{ bad "line-mode chat"; sed 's/^/  | /' "$tmp/plain.err"; }
"$Q" --remote "$url" --api-key wrong -m tiny -p "Hi" >/dev/null 2>"$tmp/key.err"
rc=$?
[ $rc = 1 ] && grep -q "HTTP 401" "$tmp/key.err" && [ "$(wc -l <"$tmp/key.err")" = 1 ] &&
	ok "wrong key: one line, exit 1" || { bad "wrong key (exit $rc)"; cat "$tmp/key.err"; }
"$Q" --remote "$url" --api-key k -m nosuch -p "Hi" >/dev/null 2>"$tmp/model.err"
[ $? = 1 ] && grep -q "nosuch" "$tmp/model.err" && ok "unknown model named" ||
	{ bad "unknown model"; cat "$tmp/model.err"; }

# ---- recorded streams of other servers, replayed -------------------------------
# vLLM (reasoning_content, usage in a last chunk with no choices) in the chat...
python3 tests/replay-server.py --model Qwen/Qwen3-Next-80B-A3B-Thinking=tests/data/remote/vllm-stream.sse \
	--model raw-Thinking=tests/data/remote/noparser-stream.sse --ctx Qwen/Qwen3-Next-80B-A3B-Thinking=vllm:262144 \
	--delay 0.01 --lifetime 60 >"$tmp/replay.port" 2>"$tmp/replay.err" &
pids="$pids $!"
for _ in $(seq 50); do [ -s "$tmp/replay.port" ] && break; sleep 0.1; done
rurl="http://127.0.0.1:$(head -1 "$tmp/replay.port")"
start Qwen/Qwen3-Next-80B-A3B-Thinking "--remote $rurl/v1"
expect "vLLM's context length shown" "ctx 0/262.1k"
send_line "What is 2 + 2?"
expect "vLLM stream: the answer (its **4** laid out as bold)" "2 + 2 = 4\."
expect "vLLM stream: reasoning in the panel" "thought for"
expect "vLLM stream: tokens from usage" "prompt 17 (1 new)"
quit_ok "quit the replayed chat"
# ...and without a reasoning parser: split at </think> in the content.
"$Q" --remote "$rurl" -m raw-Thinking -p "What is 2 + 2?" --thinking >"$tmp/np.out" 2>"$tmp/np.err"
if grep -q "^2 + 2" "$tmp/np.out" && ! grep -q "think>" "$tmp/np.out" &&
	grep -q "basic arithmetic" "$tmp/np.err"; then
	ok "no reasoning parser: split at </think>"
else
	bad "no reasoning parser"; sed 's/^/  | /' "$tmp/np.out" "$tmp/np.err"
fi

stop_servers
"$Q" --remote "$url" -p "Hi" >/dev/null 2>"$tmp/dead.err"
[ $? = 1 ] && grep -q "127.0.0.1" "$tmp/dead.err" && ok "server gone: one line, exit 1" ||
	{ bad "server gone"; cat "$tmp/dead.err"; }

finish

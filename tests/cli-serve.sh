#!/bin/sh
# cli-serve.sh - `qnext serve` on the tiny model: the HTTP checks of
# tests/serve-client.py (streaming and whole replies, parameters, errors,
# the API key, queueing, hang-ups), curl as the docs show it, and the
# server's own start and stop: a busy port, a public address without a key,
# SIGTERM; --state-cache across a restart.  Run from the repository root; needs curl and python3.
Q=${QNEXT_BIN:-./qnext}
M=share/tiny
pass=0
fail=0
tmp=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null; done; rm -rf "$tmp"' EXIT

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && cat "$2"; }

# Start a server with the given options; sets $port (empty on failure).
start() { # name, options...
	name=$1
	shift
	$Q serve -m $M --port 0 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pid=$!
	pids="$pids $pid"
	port=""
	for _ in $(seq 100); do
		port=$(sed -n 's|.*http://[^ ]*:\([0-9][0-9]*\)/v1.*|\1|p' "$tmp/$name.out")
		[ -n "$port" ] && return 0
		kill -0 $pid 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

if ! start main --api-key sekrit --queue 1; then
	bad "server starts" "$tmp/main.err"
else
	ok "server starts on port $port"
	if QNEXT_BIN=$Q python3 tests/serve-client.py "$port" sekrit "$tmp/main.err" >"$tmp/client.log" 2>&1; then
		ok "HTTP client checks: $(tail -1 "$tmp/client.log")"
	else
		bad "HTTP client checks" "$tmp/client.log"
	fi
	# The docs' curl example, streamed.
	curl -sN "http://127.0.0.1:$port/v1/chat/completions" -H "Authorization: Bearer sekrit" \
		-H "Content-Type: application/json" \
		-d '{"model":"tiny","stream":true,"max_tokens":4,
		     "messages":[{"role":"user","content":"Hello"}]}' >"$tmp/curl.out"
	if [ "$(grep -c '^data: {' "$tmp/curl.out")" -ge 5 ] && tail -2 "$tmp/curl.out" | grep -q '^data: \[DONE\]$'; then
		ok "curl streams"
	else
		bad "curl streams" "$tmp/curl.out"
	fi
	# The same port again: refused with a message naming the port.
	$Q serve -m $M --port "$port" >"$tmp/busy.out" 2>&1
	rc=$?
	if [ $rc = 1 ] && grep -q "cannot listen on 127.0.0.1 port $port: Address already in use" "$tmp/busy.out"; then
		ok "busy port"
	else
		bad "busy port (exit $rc)" "$tmp/busy.out"
	fi
	kill -TERM $pid
	for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
	if kill -0 $pid 2>/dev/null; then
		bad "SIGTERM stops the server within 10 s"
	else
		wait $pid
		rc=$?
		[ $rc = 0 ] && ok "SIGTERM: exit 0" || bad "SIGTERM: exit $rc" "$tmp/main.err"
	fi
	grep -q 'prompt [0-9]* tokens' "$tmp/main.err" && ok "request log lines" ||
		bad "request log lines" "$tmp/main.err"
fi

# Every address without a key: a warning (and no warning on loopback).
if start open --host 0.0.0.0; then
	grep -q "warning: listening on 0.0.0.0 without an API key" "$tmp/open.err" &&
		ok "public address warning" || bad "public address warning" "$tmp/open.err"
	kill $pid
else
	bad "server on 0.0.0.0 starts" "$tmp/open.err"
fi
grep -q warning "$tmp/main.err" && bad "no warning on loopback with a key" "$tmp/main.err" ||
	ok "no warning on loopback"

# --state-cache: the same conversation after a restart reads only its last message; off by
# default.  ask PORT prints cached_tokens, prompt_tokens and the greedy answer.
ask() {
	python3 - "$1" <<'PY'
import json, sys, urllib.request
msgs = [{"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Tell me about rivers and lakes. " * 4},
        {"role": "assistant", "content": "Water flows downhill. " * 4},
        {"role": "user", "content": "And the sea?"}]
body = json.dumps({"model": "tiny", "max_tokens": 4, "temperature": 0, "messages": msgs}).encode()
url = "http://127.0.0.1:%s/v1/chat/completions" % sys.argv[1]
r = json.load(urllib.request.urlopen(urllib.request.Request(
    url, body, {"Content-Type": "application/json"}), timeout=60))
u = r["usage"]
print(u["prompt_tokens_details"]["cached_tokens"], u["prompt_tokens"],
      json.dumps(r["choices"][0]["message"]))
PY
}
stop() { kill -TERM $pid; wait $pid 2>/dev/null; }
states() { ls "$tmp/xdg/qnext/state/" 2>/dev/null | grep -c '\.qsnap$'; }
export XDG_CACHE_HOME="$tmp/xdg"
if start sc1 --state-cache auto && ask $port >"$tmp/sc1.ask" && stop &&
	start sc2 --state-cache auto && ask $port >"$tmp/sc2.ask" && stop; then
	read -r c1 p1 a1 <"$tmp/sc1.ask"
	read -r c2 p2 a2 <"$tmp/sc2.ask"
	[ "$c1" = 0 ] && [ "$(states)" = 1 ] && ok "--state-cache: one state saved" ||
		bad "first run: cached $c1, $(states) states" "$tmp/sc1.err"
	[ "$c2" -gt $((p2 / 2)) ] && [ "$c2" -lt "$p2" ] &&
		ok "--state-cache: after a restart $c2 of $p2 prompt tokens cached" ||
		bad "after a restart: cached $c2 of $p2" "$tmp/sc2.err"
	[ "$a1" = "$a2" ] && ok "--state-cache: the same answer" || bad "answers: $a1 / $a2"
	rm -rf "$tmp/xdg"
	if start sc3 && ask $port >"$tmp/sc3.ask" && stop; then
		read -r c3 p3 a3 <"$tmp/sc3.ask"
		[ "$c3" = 0 ] && [ "$(states)" = 0 ] && ok "no --state-cache: nothing saved" ||
			bad "without --state-cache: cached $c3, $(states) states"
	else
		bad "server without --state-cache" "$tmp/sc3.err"
	fi
else
	bad "servers with --state-cache" "$tmp/sc1.err"
fi
$Q serve -m $M --state-cache lots >"$tmp/e4" 2>&1
[ $? = 2 ] && grep -q -- "--state-cache 'lots'" "$tmp/e4" && ok "bad --state-cache" ||
	bad "bad --state-cache" "$tmp/e4"
unset XDG_CACHE_HOME

# Bad starts: one line, exit 1 or 2.
$Q serve -m "$tmp/none" --port 0 >"$tmp/e1" 2>&1
rc=$?
[ $rc = 1 ] && grep -q "qnext serve: .*none" "$tmp/e1" && ok "missing model" || bad "missing model ($rc)" "$tmp/e1"
$Q serve -m $M --port 70000 >"$tmp/e2" 2>&1
[ $? = 2 ] && grep -q -- "--port" "$tmp/e2" && ok "bad port" || bad "bad port" "$tmp/e2"
$Q serve -m $M --host no.such.host.invalid --port 0 >"$tmp/e3" 2>&1
[ $? = 1 ] && grep -q -- "--host no.such.host.invalid" "$tmp/e3" && ok "bad host" || bad "bad host" "$tmp/e3"

echo "cli-serve: $pass passed, $fail failed"
[ $fail = 0 ]

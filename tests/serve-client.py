#!/usr/bin/env python3
"""serve-client.py - drives a running `qnext serve` (tiny model) over HTTP
with the standard library only, as an OpenAI client would, and checks the
answers: streaming and whole replies, parameters, errors, the API key,
queued and refused requests, a client that hangs up mid-answer.

usage: serve-client.py PORT KEY SERVER_STDERR_FILE
The server must run with --api-key KEY --queue 1.  $QNEXT_BIN (default
./qnext) renders and tokenizes prompts to compare with the server's counts.  Prints one line per
failure and "N passed, M failed"; exit status 1 on any failure.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

PORT, KEY, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
QNEXT = os.environ.get("QNEXT_BIN", "./qnext")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def request(method, path, body=None, key=KEY, raw=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = "Bearer " + key
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    text = r.read().decode("utf-8", "replace")
    c.close()
    return r.status, r.getheader("Content-Type", ""), text


def chat(body, key=KEY):
    st, ctype, text = request("POST", "/v1/chat/completions", body, key)
    try:
        return st, ctype, json.loads(text)
    except ValueError:
        return st, ctype, {"unparsed": text}


def stream(body):
    """The SSE events of a streamed reply, parsed; [DONE] as the string."""
    st, ctype, text = request("POST", "/v1/chat/completions", dict(body, stream=True))
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        check("sse data line", block.startswith("data: "), repr(block[:80]))
        data = block[6:]
        events.append(data if data == "[DONE]" else json.loads(data))
    return st, ctype, events


def joined(events, field):
    return "".join(e["choices"][0]["delta"].get(field, "")
                   for e in events if isinstance(e, dict) and e.get("choices"))


USER = [{"role": "user", "content": "Tell me about the sea."}]

# --- health, models, key ---------------------------------------------------
st, _, text = request("GET", "/health", key=None)
check("health open without key", st == 200 and json.loads(text)["status"] == "ok", text)
st, _, text = request("GET", "/v1/models")
models = json.loads(text)
check("models", st == 200 and models["object"] == "list" and models["data"][0]["id"] == "tiny"
      and models["data"][0]["max_model_len"] == 40960, text)
for k, what in ((None, "no key"), ("wrong" + KEY, "wrong key")):
    st, _, body = chat({"messages": USER, "max_tokens": 2}, key=k)
    check("401 " + what, st == 401 and body["error"]["code"] == "invalid_api_key", str(body))
st, _, text = request("GET", "/v1/nothing")
check("404", st == 404 and "error" in json.loads(text), text)
st, _, text = request("GET", "/v1/chat/completions")
check("405", st == 405, text)

# --- a whole reply ------------------------------------------------------------
st, ctype, r = chat({"messages": USER, "max_tokens": 8, "seed": 11, "temperature": 0.9})
check("whole reply 200", st == 200 and ctype.startswith("application/json"), str(r))
choice = r["choices"][0]
check("object", r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-"))
check("finish length", choice["finish_reason"] == "length", str(choice))
check("usage", r["usage"]["completion_tokens"] == 8 and r["usage"]["prompt_tokens"] > 5
      and r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + 8, str(r["usage"]))
check("reasoning apart", len(choice["message"].get("reasoning_content", "")) > 0
      and choice["message"]["role"] == "assistant", str(choice))

# --- the same seed streamed gives the same text ---------------------------------
st, ctype, ev = stream({"messages": USER, "max_tokens": 8, "seed": 11, "temperature": 0.9,
                        "stream_options": {"include_usage": True}})
check("stream 200", st == 200 and ctype.startswith("text/event-stream"), ctype)
check("role first", ev[0]["choices"][0]["delta"].get("role") == "assistant", str(ev[0]))
check("[DONE] last", ev[-1] == "[DONE]", str(ev[-1]))
check("usage chunk", ev[-2]["choices"] == [] and ev[-2]["usage"]["completion_tokens"] == 8,
      str(ev[-2]))
check("finish chunk", ev[-3]["choices"][0]["finish_reason"] == "length", str(ev[-3]))
check("one chunk per token", sum(1 for e in ev if isinstance(e, dict) and e.get("choices")
                                 and e["choices"][0]["delta"].get("reasoning_content")) >= 6)
check("same seed, same reasoning", joined(ev, "reasoning_content") ==
      choice["message"]["reasoning_content"],
      repr((joined(ev, "reasoning_content"), choice["message"]["reasoning_content"])))
st, _, ev2 = stream({"messages": USER, "max_tokens": 8, "seed": 12, "temperature": 0.9})
check("no usage unless asked", all("usage" not in e for e in ev2 if isinstance(e, dict)))
check("another seed, another reasoning",
      joined(ev2, "reasoning_content") != joined(ev, "reasoning_content"))

# --- parameters ----------------------------------------------------------------
greedy = {"messages": USER, "max_tokens": 24, "temperature": 0}
_, _, g1 = chat(greedy)
_, _, g2 = chat(dict(greedy, seed=99))
t1 = g1["choices"][0]["message"]["reasoning_content"]
check("temperature 0 is greedy", t1 == g2["choices"][0]["message"]["reasoning_content"])
_, _, p = chat({"messages": USER, "max_tokens": 24, "temperature": 1.5, "top_k": 1})
check("top_k 1 is greedy", p["choices"][0]["message"]["reasoning_content"] == t1)
_, _, p = chat({"messages": USER, "max_completion_tokens": 3, "max_tokens": 9})
check("max_completion_tokens wins", p["usage"]["completion_tokens"] == 3, str(p["usage"]))
# A stop string cuts the text before it and ends the reply.
cut = t1[len(t1) // 2:len(t1) // 2 + 4]
if cut.strip() and "\ufffd" not in cut:
    # ignore_eos and a high limit: the stop string must be what ends it.
    _, _, s = chat(dict(greedy, stop=[cut, "zzzz-never"], max_tokens=20000, ignore_eos=True))
    got = s["choices"][0]["message"]["reasoning_content"]
    check("stop string", got == t1[:t1.index(cut)] and s["choices"][0]["finish_reason"] == "stop"
          and s["usage"]["completion_tokens"] < 20000, repr((cut, got, s["usage"])))
    st, _, ev = stream(dict(greedy, stop=cut))
    check("stop string streamed", joined(ev, "reasoning_content") == t1[:t1.index(cut)]
          and ev[-2]["choices"][0]["finish_reason"] == "stop", repr(ev[-3:]))
else:
    check("greedy text has a usable stop string", False, repr(t1))
# A conversation that extends the last one re-reads only what is new.
conv = USER + [{"role": "assistant", "content": "The sea is large."},
               {"role": "user", "content": "And deep?"}]
chat({"messages": conv[:1], "max_tokens": 2})
_, _, p = chat({"messages": conv, "max_tokens": 2})
check("prefix reused", p["usage"]["prompt_tokens_details"]["cached_tokens"] > 5, str(p["usage"]))
# Content as parts, a developer message, a prior reasoning_content: accepted.
_, _, p = chat({"messages": [{"role": "developer", "content": "Be brief."},
                             {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                             {"role": "assistant", "content": "Hello",
                              "reasoning_content": "greet"},
                             {"role": "user", "content": "Bye"}], "max_tokens": 2})
check("content parts, developer", p.get("usage", {}).get("completion_tokens") == 2, str(p))
# continue_final_message: the reply goes on with the last message in the part it ended in.  A
# new turn would open with reasoning (the Thinking template opens <think>); going on with an
# answer is all answer, and going on inside a thought is reasoning.
CONT = {"continue_final_message": True, "add_generation_prompt": False, "max_tokens": 4,
        "temperature": 0}
_, _, p = chat(dict(CONT, messages=USER + [{"role": "assistant", "content": "The answer is",
                                            "reasoning_content": "Easy."}]))
m = p.get("choices", [{}])[0].get("message", {})
check("continue an answer: answer text only", len(m.get("content", "")) > 0
      and not m.get("reasoning_content") and p["usage"]["completion_tokens"] == 4, str(p))
_, _, p2 = chat(dict(CONT, messages=USER + [{"role": "assistant", "content": "The answer is",
                                             "reasoning_content": "Easy."}]))
check("continue: greedy, the same again", p2.get("choices") == p.get("choices"), str(p2))
_, _, p = chat(dict(CONT, messages=USER + [{"role": "assistant", "content": None,
                                            "reasoning_content": "Let me see"}]))
m = p.get("choices", [{}])[0].get("message", {})
check("continue inside the thought: reasoning", len(m.get("reasoning_content", "")) > 0, str(p))
_, _, p = chat({"messages": USER + [{"role": "assistant", "content": "The answer is"}],
                "max_tokens": 4, "temperature": 0})
m = p.get("choices", [{}])[0].get("message", {})
check("without continue_final_message: a new turn, reasoning first",
      len(m.get("reasoning_content", "")) > 0, str(p))

# Tools: the template lists them in the system turn, and a conversation that used one (the
# assistant's call, the tool's answer) is rendered as the template renders it.
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
_, _, plain = chat({"messages": USER, "max_tokens": 1})
_, _, p = chat({"messages": USER, "tools": TOOLS, "max_tokens": 1})
check("tools listed in the prompt", p["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 50,
      f"{p['usage']} vs {plain['usage']}")
_, _, p2 = chat({"messages": USER, "tools": TOOLS, "tool_choice": "none", "max_tokens": 1})
check("tool_choice none leaves them out",
      p2["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"], str(p2["usage"]))
used = USER + [{"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function",
     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}]
st, _, p3 = chat({"messages": used, "tools": TOOLS, "max_tokens": 1})
check("a conversation with a tool call and its result", st == 200 and
      p3["usage"]["prompt_tokens"] > p["usage"]["prompt_tokens"] + 10, f"{st} {p3}")
# The same counts as `qnext render | qnext tokenize` give: the tools reach the template as sent.
for conv, got in ((USER, p), (used, p3)):
    text = subprocess.run([QNEXT, "render"], input=json.dumps({"messages": conv, "tools": TOOLS}),
                          capture_output=True, text=True).stdout
    ids = subprocess.run([QNEXT, "tokenize", "-m", "share/tiny"], input=text,
                         capture_output=True, text=True).stdout
    check("prompt tokens as render + tokenize count them (%d messages)" % len(conv),
          len(json.loads(ids or "[]")) == got["usage"]["prompt_tokens"],
          f"{ids[:80]} {got['usage']}")

# --- errors ---------------------------------------------------------------------
bad = [
    ({"messages": USER, "temperature": 5}, "temperature"),
    ({"messages": USER, "top_p": "x"}, "top_p"),
    ({"messages": USER, "max_tokens": 0}, "max_tokens"),
    ({"messages": USER, "n": 2}, "n"),
    ({"messages": USER, "seed": -1}, "seed"),
    ({"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": USER, "tools": [{"type": "retrieval"}]}, "tools[0]"),
    ({"messages": USER, "tool_choice": "required"}, "tool_choice"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"prompt": "hi"}, "messages"),
    ({"messages": USER, "continue_final_message": True}, "continue_final_message"),
    ({"messages": USER + [{"role": "assistant", "content": "x"}],
      "continue_final_message": True, "add_generation_prompt": True}, "add_generation_prompt"),
    ({"messages": USER, "add_generation_prompt": False}, "add_generation_prompt"),
    ({"messages": USER, "thinking_token_budget": -1}, "thinking_token_budget"),
]
for body, param in bad:
    st, _, e = chat(body)
    check("400 " + param, st == 400 and e.get("error", {}).get("param") == param
          and e["error"]["type"] == "invalid_request_error", f"{st} {e}")
for raw, what in (("{not json", "bad JSON"), ("[1,2]", "not an object"),
                  ('{"messages":[],"messages":[]}', "duplicate key")):
    st, _, text = request("POST", "/v1/chat/completions", raw=raw)
    check("400 " + what, st == 400 and "error" in json.loads(text), text)
st, _, text = request("POST", "/v1/chat/completions", raw='{"a":"' + "x" * (9 << 20) + '"}')
check("413 body too big", st == 413, text[:200])
st, _, e = chat({"messages": [{"role": "user", "content": "word " * 50000}], "max_tokens": 2})
check("400 context exceeded", st == 400 and e["error"]["code"] == "context_length_exceeded",
      str(e)[:300])

# --- one at a time: queued, then refused ------------------------------------------
# Long enough to still run while two more arrive (~3 s, whatever this build's speed).
t0 = time.time()
chat({"messages": USER, "max_tokens": 300, "ignore_eos": True})
N_LONG = int(min(30000, max(300, 3.0 * 300 / max(time.time() - t0, 1e-3))))
LONG = {"messages": USER, "max_tokens": N_LONG, "temperature": 1.0, "ignore_eos": True}
results = {}


def run(name, body):
    results[name] = chat(body)


a = threading.Thread(target=run, args=("a", LONG))
a.start()
time.sleep(0.3)
b = threading.Thread(target=run, args=("b", dict(LONG, max_tokens=4)))
b.start()
time.sleep(0.3)
st, _, e = chat(dict(LONG, max_tokens=4))   # --queue 1: one runs, one waits, this is refused
a_busy = a.is_alive()
a.join()
b.join()
if a_busy:
    check("503 when the queue is full", st == 503 and e["error"]["code"] == "server_busy",
          f"{st} {e}")
    check("queued request served", results["b"][0] == 200
          and results["b"][2]["usage"]["completion_tokens"] == 4, str(results["b"]))
else:
    check("the long request ran long enough to queue behind", False, str(N_LONG))
check("first request whole", results["a"][0] == 200
      and results["a"][2]["usage"]["completion_tokens"] == N_LONG, str(results["a"])[:300])

# --- a client that hangs up stops its generation -------------------------------------
s = socket.create_connection(("127.0.0.1", PORT))
body = json.dumps({"messages": USER, "max_tokens": 100000, "stream": True,
                   "ignore_eos": True}).encode()
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
          KEY.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: " +
          str(len(body)).encode() + b"\r\n\r\n" + body)
got = b""
while got.count(b"reasoning_content") < 20:
    got += s.recv(65536)
s.close()
t0 = time.time()
st, _, p = chat({"messages": USER, "max_tokens": 2})
waited = time.time() - t0
check("next request right after a hang-up", st == 200 and waited < 10, f"{st} {waited:.1f}s")
time.sleep(0.2)
log = open(LOG).read()
gone = [l for l in log.splitlines() if "(client gone)" in l]
check("hang-up logged, generation stopped early", len(gone) == 1 and "stopped" in gone[0]
      and int(gone[0].split(" generated")[0].split()[-1]) < 100000, "\n".join(gone) or log[-800:])

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

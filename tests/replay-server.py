#!/usr/bin/env python3
"""replay-server.py - a tiny OpenAI-compatible chat server for qnext's tests.

It replays recorded server-sent-event streams (tests/data/remote/*.sse) as the answer to
POST /v1/chat/completions, so engine/remote.c can be tested against real HTTP without a model.

usage: python3 tests/replay-server.py --model ID=FILE [--model ID=FILE ...]
           [--ctx ID=vllm:N | --ctx ID=llama:N] [--delay S] [--first-delay S]
           [--key KEY] [--chat-status CODE] [--record FILE] [--log FILE] [--lifetime S]

  --model ID=FILE   a model GET /v1/models lists (in this order) and the .sse file a chat
                    request for it replays; a request for a model not listed gets 404
  --ctx ID=KIND:N   the context length /v1/models gives for ID: vLLM's "max_model_len": N
                    or llama-server's "meta": {"n_ctx_train": N}
  --delay S         seconds between two events (default 0)
  --first-delay S   seconds before the first event, as a long prefill (default 0)
  --key KEY         requests without "Authorization: Bearer KEY" get 401 and an
                    OpenAI-style error object
  --chat-status N   answer every chat request with status N and an OpenAI-style error
  --record FILE     after each chat request, FILE holds {"body": <its JSON>,
                    "peer_port": <the client's port>, "authorization": <header or null>}
  --log FILE        one line per chat request: "sent N of M events", then "complete" or
                    "disconnected" (the client went away: the server stopped sending)
  --lifetime S      exit after S seconds whatever happens (default 120)

Listens on 127.0.0.1, port 0 (a free one), and prints the port on stdout once listening.
HTTP/1.1 with keep-alive; events go out one per chunk of a chunked answer, as uvicorn
(vLLM) sends them.  Any other path gets 404 with a two-line plain-text body.  Exits when
its parent process goes.  Python 3 standard library only.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPTS = None
MODELS = []  # [(id, events)]
CTX = {}  # id -> (kind, n)
LOCK = threading.Lock()


def read_events(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [part + "\n\n" for part in text.split("\n\n") if part.strip()]


def log_line(line):
    if OPTS.log:
        with LOCK, open(OPTS.log, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def error_object(message, kind, code):
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def not_found(self):
        body = b"404 page not found\nno route for this path\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        if OPTS.key is None or self.headers.get("Authorization") == "Bearer " + OPTS.key:
            return True
        self.send_json(401, error_object("Incorrect API key provided.",
                                         "invalid_request_error", "invalid_api_key"))
        return False

    def model_entry(self, mid):
        entry = {"id": mid, "object": "model", "created": 1757612345, "owned_by": "replay"}
        kind, n = CTX.get(mid, (None, 0))
        if kind == "vllm":
            entry["max_model_len"] = n
        elif kind == "llama":
            entry["meta"] = {"vocab_type": 2, "n_vocab": 151936, "n_ctx_train": n}
        return entry

    def do_GET(self):
        if self.path != "/v1/models":
            self.not_found()
        elif self.authorized():
            self.send_json(200, {"object": "list",
                                 "data": [self.model_entry(mid) for mid, _ in MODELS]})

    def record(self, raw):
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed": raw.decode("utf-8", "replace")}
        if OPTS.record:
            rec = {"body": body, "peer_port": self.client_address[1],
                   "authorization": self.headers.get("Authorization")}
            with open(OPTS.record + ".tmp", "w", encoding="utf-8") as f:
                json.dump(rec, f)
            os.replace(OPTS.record + ".tmp", OPTS.record)
        return body

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/chat/completions":
            self.not_found()
            return
        body = self.record(raw)
        if not self.authorized():
            return
        if OPTS.chat_status:
            self.send_json(OPTS.chat_status, error_object(
                "The server is overloaded, try again later.", "ServiceUnavailableError",
                OPTS.chat_status))
            return
        events = dict(MODELS).get(body.get("model") if isinstance(body, dict) else None)
        if events is None:
            self.send_json(404, error_object("The model does not exist.", "NotFoundError", 404))
            return
        self.replay(events)

    def replay(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            time.sleep(OPTS.first_delay)
            for ev in events:
                if sent > 0:
                    time.sleep(OPTS.delay)
                data = ev.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                sent += 1
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            log_line("sent %d of %d events, complete" % (sent, len(events)))
        except (BrokenPipeError, ConnectionResetError):
            log_line("sent %d of %d events, disconnected" % (sent, len(events)))
            self.close_connection = True


def watch_parent(parent, deadline):
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.2)
    os._exit(0)


def main():
    global OPTS
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--ctx", action="append", default=[])
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--first-delay", type=float, default=0.0)
    ap.add_argument("--key")
    ap.add_argument("--chat-status", type=int, default=0)
    ap.add_argument("--record")
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=float, default=120.0)
    OPTS = ap.parse_args()
    for spec in OPTS.model:
        mid, path = spec.split("=", 1)
        MODELS.append((mid, read_events(path)))
    for spec in OPTS.ctx:
        mid, rest = spec.split("=", 1)
        kind, n = rest.split(":", 1)
        CTX[mid] = (kind, int(n))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=watch_parent, args=(os.getppid(), time.monotonic() + OPTS.lifetime),
                     daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

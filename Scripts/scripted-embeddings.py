#!/usr/bin/env python3
"""A scripted OpenAI-compatible embeddings server for tests: the failures a real server rarely
gives on demand (429 with Retry-After, 500, a hang, a malformed body, a wrong dimension, an
oversized-batch rejection).

    scripted-embeddings.py SCRIPT.json LOG.ndjson     prints PORT=n once listening

SCRIPT: {"dimension": 8, "max_inputs": 0, "steps": [{"status": 429, "headers": {...}, "body": "...",
"delay": 0, "kind": "ok|wrong_dimension|malformed|hang"}, ...]}. Each request takes the next step;
when the steps run out, requests are answered correctly. With max_inputs > 0, a request with more
inputs is refused with 413-style 400 "batch size too large". Vectors are deterministic: from the
SHA-256 of the text. Every request is appended to LOG (inputs, status, headers seen: whether an
Authorization header came, never its value).
"""
import base64, hashlib, json, os, struct, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

script = json.load(open(sys.argv[1]))
log_path = sys.argv[2]
lock = threading.Lock()
steps = list(script.get("steps", []))
dim = int(script.get("dimension", 8))
max_inputs = int(script.get("max_inputs", 0))


def vector(text, d):
    h = hashlib.sha256(text.encode()).digest()
    out = []
    while len(out) < d:
        for b in h:
            out.append((b - 127.5) / 127.5)
        h = hashlib.sha256(h).digest()
    return out[:d]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body, headers=None):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, '{"status": "ok"}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        try:
            req = json.loads(raw)
        except Exception:
            return self.answer(400, '{"error": {"message": "invalid JSON"}}')
        inputs = req.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        with lock:
            step = steps.pop(0) if steps else {}
        entry = {"inputs": inputs, "input_type": req.get("input_type"), "model": req.get("model"),
                 "encoding_format": req.get("encoding_format"), "dimensions": req.get("dimensions"),
                 "authorization": "Authorization" in self.headers, "step": step.get("kind", step.get("status", "ok"))}
        with lock, open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if step.get("delay"):
            time.sleep(float(step["delay"]))
        kind = step.get("kind", "ok")
        if kind == "hang":
            time.sleep(float(step.get("seconds", 30)))
            return
        if "status" in step and step["status"] != 200:
            return self.answer(int(step["status"]), step.get("body", '{"error": {"message": "scripted"}}'),
                               step.get("headers"))
        if max_inputs and len(inputs) > max_inputs:
            return self.answer(400, json.dumps({"error": {"message": "batch size too large: %d inputs, at most %d"
                                                          % (len(inputs), max_inputs)}}))
        if kind == "malformed":
            return self.answer(200, '{"data": [{"embedding": [0.1,')
        d = int(req.get("dimensions") or dim)
        data = []
        for i, t in enumerate(inputs):
            v = vector(t, d + 1 if (kind == "wrong_dimension" and i == len(inputs) - 1) else d)
            if req.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack("<%df" % len(v), *v)).decode()
            else:
                emb = v
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(t.split()) + 1 for t in inputs)
        self.answer(200, json.dumps({"object": "list", "data": data, "model": req.get("model"),
                                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
                    step.get("headers"))


def watch_parent(parent=os.getppid()):
    # The test process that started us is gone (even killed): stop too.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=watch_parent, daemon=True).start()
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("PORT=%d" % server.server_address[1], flush=True)
sys.stdout.flush()
os.close(1)
server.serve_forever()

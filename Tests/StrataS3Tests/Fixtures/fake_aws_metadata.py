#!/usr/bin/env python3
"""A fake of the AWS credential endpoints, for Strata's tests. Python 3 standard library only.

Listens on 127.0.0.1 at a free port and prints "PORT=<n>" on stdout. Stops when its stdin
closes (so it dies with the test process that started it) or after --max-seconds.

Endpoints
  IMDSv2  PUT  /latest/api/token                          needs X-aws-ec2-metadata-token-ttl-seconds
          GET  /latest/meta-data/iam/security-credentials/ needs X-aws-ec2-metadata-token (else 401)
          GET  /latest/meta-data/iam/security-credentials/<role>
  ECS     GET  /ecs/<anything>                             checks Authorization when configured
  STS     POST /sts/ (or GET with a query)                 AssumeRoleWithWebIdentity, XML
  control POST /_control/configure  JSON merged into the state below
          GET  /_control/requests   JSON list of requests seen (method, path, headers, form)
          POST /_control/reset      forget requests, tokens and counters

Every credential served is numbered per service: access key "<PREFIX>KEY<n>", secret
"<prefix>-secret-<n>", token "<prefix>-session-<n>", so tests can tell a refresh happened.
"""
import argparse
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {
    "imds": {
        "role": "strata-test-role",        # None: no instance profile (404)
        "expiration": "2100-01-01T00:00:00Z",
        "token_status": 200,               # 403/404/405 to test the IMDSv1 fallback
        "allow_v1": False,                 # serve credentials without a token
    },
    "ecs": {
        "authorization": None,             # required Authorization header value, or None
        "expiration": "2100-01-01T00:00:00Z",
        "status": 200,                     # e.g. 500 to make fetches fail
    },
    "sts": {
        "role_arn": "arn:aws:iam::123456789012:role/strata-test",
        "token": "web-identity-token-1",
        "expiration": "2100-01-01T00:00:00Z",
        "status": 200,                     # e.g. 500 to make calls fail
    },
}
COUNTERS = {"imds": 0, "ecs": 0, "sts": 0}
TOKENS = set()
REQUESTS = []


def issue(service, prefix):
    COUNTERS[service] += 1
    n = COUNTERS[service]
    return {
        "AccessKeyId": "%sKEY%d" % (prefix.upper(), n),
        "SecretAccessKey": "%s-secret-%d" % (prefix, n),
        "Token": "%s-session-%d" % (prefix, n),
        "Expiration": STATE[service]["expiration"],
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def record(self, form=None):
        REQUESTS.append({
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "form": form or {},
        })

    # --- dispatch ---

    def do_PUT(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        raw = self.body()
        path = urllib.parse.urlsplit(self.path).path
        with LOCK:
            if path.startswith("/_control/"):
                return self.control(path, raw)
            form = {}
            if path.startswith("/sts"):
                query = urllib.parse.urlsplit(self.path).query
                source = raw.decode() if self.command == "POST" else query
                form = {k: v[0] for k, v in urllib.parse.parse_qs(source).items()}
            self.record(form)
            if path.startswith("/latest/"):
                return self.imds(path)
            if path.startswith("/ecs/"):
                return self.ecs()
            if path.startswith("/sts"):
                return self.sts(form)
            self.reply(404, '{"message": "no such fake endpoint"}')

    def control(self, path, raw):
        if path == "/_control/configure" and self.command == "POST":
            update = json.loads(raw or b"{}")
            for service, values in update.items():
                STATE[service].update(values)
            return self.reply(200, json.dumps(STATE))
        if path == "/_control/requests":
            return self.reply(200, json.dumps(REQUESTS))
        if path == "/_control/reset" and self.command == "POST":
            REQUESTS.clear()
            TOKENS.clear()
            for k in COUNTERS:
                COUNTERS[k] = 0
            return self.reply(200, "{}")
        self.reply(404, "{}")

    # --- IMDSv2 ---

    def imds(self, path):
        cfg = STATE["imds"]
        if path == "/latest/api/token":
            if self.command != "PUT":
                return self.reply(405, "", "text/plain")
            if cfg["token_status"] != 200:
                return self.reply(cfg["token_status"], "", "text/plain")
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, "missing ttl header", "text/plain")
            token = "imds-token-%d" % (len(TOKENS) + 1)
            TOKENS.add(token)
            return self.reply(200, token, "text/plain")
        if self.command != "GET":
            return self.reply(405, "", "text/plain")
        token = self.headers.get("X-aws-ec2-metadata-token")
        if token not in TOKENS and not (token is None and cfg["allow_v1"]):
            return self.reply(401, "", "text/plain")
        base = "/latest/meta-data/iam/security-credentials/"
        if path == base:
            if not cfg["role"]:
                return self.reply(404, "", "text/plain")
            return self.reply(200, cfg["role"], "text/plain")
        if path.startswith(base) and cfg["role"] and path[len(base):] == cfg["role"]:
            doc = issue("imds", "imds")
            doc.update({"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": "2024-01-01T00:00:00Z"})
            return self.reply(200, json.dumps(doc))
        self.reply(404, "", "text/plain")

    # --- ECS / EKS Pod Identity ---

    def ecs(self):
        cfg = STATE["ecs"]
        want = cfg["authorization"]
        if want is not None and self.headers.get("Authorization") != want:
            return self.reply(401, json.dumps({"code": "AccessDenied", "message": "bad authorization token"}))
        if cfg["status"] != 200:
            return self.reply(cfg["status"], json.dumps({"code": "InternalError", "message": "fake failure"}))
        self.reply(200, json.dumps(issue("ecs", "ecs")))

    # --- STS AssumeRoleWithWebIdentity ---

    def sts_error(self, status, code, message):
        xml = ("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
               "<Code>%s</Code><Message>%s</Message></Error><RequestId>fake-request-id</RequestId>"
               "</ErrorResponse>" % (code, message))
        self.reply(status, xml, "text/xml")

    def sts(self, form):
        cfg = STATE["sts"]
        if form.get("Action") != "AssumeRoleWithWebIdentity" or form.get("Version") != "2011-06-15":
            return self.sts_error(400, "InvalidAction", "unexpected Action or Version")
        if not form.get("RoleSessionName"):
            return self.sts_error(400, "ValidationError", "RoleSessionName is required")
        if cfg["status"] != 200:
            return self.sts_error(cfg["status"], "ServiceUnavailable", "fake failure")
        if form.get("RoleArn") != cfg["role_arn"]:
            return self.sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        if form.get("WebIdentityToken") != cfg["token"]:
            return self.sts_error(400, "InvalidIdentityToken", "The web identity token is not valid")
        c = issue("sts", "sts")
        xml = (
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
            "  <AssumeRoleWithWebIdentityResult>\n"
            "    <SubjectFromWebIdentityToken>system:serviceaccount:default:strata</SubjectFromWebIdentityToken>\n"
            "    <AssumedRoleUser><Arn>%s/%s</Arn><AssumedRoleId>AROAFAKE:%s</AssumedRoleId></AssumedRoleUser>\n"
            "    <Credentials>\n"
            "      <AccessKeyId>%s</AccessKeyId>\n"
            "      <SecretAccessKey>%s</SecretAccessKey>\n"
            "      <SessionToken>%s</SessionToken>\n"
            "      <Expiration>%s</Expiration>\n"
            "    </Credentials>\n"
            "    <Provider>oidc.example</Provider>\n"
            "  </AssumeRoleWithWebIdentityResult>\n"
            "  <ResponseMetadata><RequestId>fake-request-id</RequestId></ResponseMetadata>\n"
            "</AssumeRoleWithWebIdentityResponse>\n"
            % (cfg["role_arn"], form["RoleSessionName"], form["RoleSessionName"], c["AccessKeyId"],
               c["SecretAccessKey"], c["Token"], c["Expiration"]))
        self.reply(200, xml, "text/xml")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT=%d" % server.server_address[1], flush=True)

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(1024):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Timer(args.max_seconds, lambda: os._exit(0)).start()
    server.serve_forever()


if __name__ == "__main__":
    main()

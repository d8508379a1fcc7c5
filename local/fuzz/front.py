"""A pass-through front for the fuzz run, standing where API Gateway stands.

usage: python3 local/fuzz/front.py UPSTREAM_URL PORT_FILE

Forwards every request to UPSTREAM_URL (the local stack) unchanged, with one exception: a body
that is not UTF-8 under a text content type (JSON, text/*, form-urlencoded, or none). API
Gateway hands such bytes to the function base64-encoded and the handlers answer 400 (pinned by
submit-youtube's `malformed_json_and_wrong_content_types_are_400`), but `cargo lambda watch`
cannot put them into its event and answers 500 itself, before any function runs. Here such a
body reaches the function with its broken bytes replaced by U+FFFD: still not valid input, and
still answered by our code. Every rewrite is counted and printed on exit.

The chosen port is written to PORT_FILE once the front listens.
"""

import http.client
import http.server
import signal
import sys
import threading
import urllib.parse

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "trailer"}
rewritten = 0
lock = threading.Lock()


def is_text(content_type):
    if not content_type:
        return True
    media = content_type.split(";")[0].strip().lower()
    return (
        media.startswith("text/")
        or media == "application/json"
        or media.endswith("+json")
        or media == "application/x-www-form-urlencoded"
    )


class Front(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        global rewritten
        body = self.read_body()
        if body and is_text(self.headers.get("Content-Type")):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                body = body.decode("utf-8", errors="replace").encode("utf-8")
                with lock:
                    rewritten += 1
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}
        }
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            reply = upstream.getresponse()
            data = reply.read()
            self.send_response_only(reply.status, reply.reason)
            for k, v in reply.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            upstream.close()

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def __getattr__(self, name):
        # every method, the unusual ones too (QUERY, PROPFIND, ...): the stack answers them
        if name.startswith("do_"):
            return self.forward
        raise AttributeError(name)

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
    with open(sys.argv[2], "w") as f:
        f.write(str(server.server_address[1]))

    def stop(*_):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    print(f"[front] non-UTF-8 text bodies delivered with U+FFFD: {rewritten}", flush=True)


if __name__ == "__main__":
    main()

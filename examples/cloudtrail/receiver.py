#!/usr/bin/env python3
"""A tiny HTTP endpoint for the README's scenario: prints every request it
receives (method, path, the x-api-key header, body) and answers 200.

    python3 examples/cloudtrail/receiver.py [PORT]     (default 9000)
"""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print("%s %s x-api-key=%s %s" % (self.command, self.path, self.headers.get("x-api-key"),
                                         body.decode("utf-8", "replace")), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()

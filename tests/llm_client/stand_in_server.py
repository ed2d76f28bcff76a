"""A stand-in for llama.cpp's server in tests: ``python stand_in_server.py PORT [--busy]``.

It answers every GET and POST on loopback ``PORT`` with 200 and an empty model list: a server
that is up, whoever it is. With ``--busy`` it is llama.cpp busy generating: it prints uvicorn's
"running on" line (what ``LocalLLMServer`` waits for) and ignores SIGTERM and SIGINT, as
llama.cpp's uvicorn does until its answer is done (which can take a minute; this one never is).
The real server takes seconds to load and both cores to run.
"""

import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def _ok(self):
        body = b'{"object": "list", "data": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _ok

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port, busy = int(sys.argv[1]), "--busy" in sys.argv[2:]
    if busy:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = HTTPServer(("127.0.0.1", port), Handler)
    if busy:
        print(f"INFO:     Uvicorn running on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()

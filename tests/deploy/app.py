"""A stand-in for the service behind tokengate in the sidecar lifecycle test.

Serves GET /slow/<ms> (answers 200 "app" after that many milliseconds) and anything else at
once, on 127.0.0.1 and a free port, which it prints on its first line. On SIGTERM it stops
accepting and exits once its in-flight requests are answered, as a well-behaved app does.
"""
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/slow/"):
            time.sleep(int(self.path.split("/")[2]) / 1000)
        body = b"app"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
# Not daemon threads: server_close() waits for the requests in flight.
server.daemon_threads = False
print(server.server_address[1], flush=True)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
server.server_close()
print("drained", flush=True)

"""A webhook receiver for trying Flightlog's alerting locally: prints every alert it gets.

    python examples/webhook_receiver.py            # listens on http://127.0.0.1:8765/

examples/flightlog.toml sends its teams' alerts here. Standard library only.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        # One request may carry several alerts (a group): the root-cause owner's page and
        # the workflow owner's notice, when both go to this channel. Labels say which.
        for alert in body.get("alerts", []):
            summary = alert.get("annotations", {}).get("summary", "")
            labels = alert.get("labels", {})
            whom = f"to {labels.get('team', '?')} ({labels.get('role', '?')})"
            print(f"{self.path} [{alert.get('status')}] {whom}: {summary}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # no access log: the alerts are the output
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    server = HTTPServer(("127.0.0.1", port), Handler)
    print(f"receiving webhooks on http://127.0.0.1:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass

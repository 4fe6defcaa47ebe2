"""A GET-only Neutron API stub for the lab (stdlib http.server).

Nova needs *some* Neutron endpoint even for servers booted with
``networks='none'``: it lists ports and networks on show/list, evacuation
and cleanup.  Every GET of a collection answers an empty list; any write
answers 501, so an unexpected dependency on Neutron is loud in the logs.

Run as ``python -m petguard_lab.neutron_stub --port 9696`` (or this file).
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    """Answers GET with empty collections, everything else with 501."""

    server_version = "petguard-lab-neutron-stub/1"
    protocol_version = "HTTP/1.0"

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        parts = [p for p in path.split("/") if p]
        if not parts:
            self._reply(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": []}]})
        elif parts == ["v2.0"]:
            self._reply(200, {"resources": []})
        elif len(parts) == 2 and parts[0] == "v2.0":
            name = parts[1].removesuffix(".json")
            self._reply(200, {name.replace("-", "_"): []})
        else:
            self._reply(404, {"NeutronError": {
                "type": "NotFound", "message": f"{path} not found (lab stub)", "detail": ""}})

    def _not_implemented(self) -> None:
        self._reply(501, {"NeutronError": {
            "type": "NotImplemented",
            "message": f"{self.command} {self.path}: the petguard lab Neutron stub is read-only",
            "detail": ""}})

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_implemented  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"{self.log_date_time_string()} {format % args}\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9696)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"neutron stub listening on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

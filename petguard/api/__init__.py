"""petguard's HTTP API: wire shapes, alert parsing, authentication and the WSGI app (no store, no adapters)."""

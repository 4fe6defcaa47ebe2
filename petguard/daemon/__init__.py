"""The daemon's composition root: wiring (``service``), the API's backend, metrics and the process lifecycle."""

"""The ``petguard`` operator CLI: a thin cliff client of the daemon's local HTTP API (docs/cli.md).

``client`` speaks HTTP (httpx) and owns the error tree; ``confirm`` asks before destructive requests;
``columns`` turns the API's JSON shapes into cliff rows; ``commands`` holds one class per command and
``main`` the cliff application with the command table. Nothing here reaches the store, fencing or
evacuation: the daemon's loop decides and acts, the CLI only asks and reports.
"""

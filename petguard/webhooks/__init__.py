"""Outgoing alerts: one signed JSON event (or a Slack line) per meaningful change.

The events table is the durable outbox: ``dispatch.Dispatcher`` delivers each receiver's events after
its cursor, in id order, and moves the cursor only after a delivery succeeded, so an alert waits
across failures and restarts instead of being lost. ``payload`` turns an event into the bytes sent;
``receivers`` reads the receivers from configuration.
"""

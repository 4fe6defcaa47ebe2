"""fencing package."""

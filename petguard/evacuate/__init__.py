"""evacuate package."""

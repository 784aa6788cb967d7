"""Domain types and pure rules shared by every layer (no I/O here)."""

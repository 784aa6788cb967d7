"""REST API (FastAPI): translates HTTP to service calls and back; no business rules here."""

"""The engine runs one capture as a plan: quiesce → capture → release (always) → report."""

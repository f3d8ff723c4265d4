"""Local-only tooling (never deployed): the local Functions host, the CLI, the demo and the report."""

"""`python -m producer`: realistic weather telemetry (and chaos) for Event Hubs or the embedded hub."""

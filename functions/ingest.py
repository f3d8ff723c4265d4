"""Placeholder so function_app.py imports while the ingest blueprint is being built."""

import azure.functions as func

bp = func.Blueprint()

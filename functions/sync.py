"""Placeholder so function_app.py imports while the sync blueprint is being built."""

import azure.functions as func

bp = func.Blueprint()

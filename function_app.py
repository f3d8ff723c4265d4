"""The Azure Functions app: a table of contents. Each blueprint lives in functions/."""

import azure.functions as func

from functions import ingest, sync

app = func.FunctionApp()
app.register_functions(ingest.bp)
app.register_functions(sync.bp)

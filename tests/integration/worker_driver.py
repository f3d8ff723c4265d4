"""Drive the real Azure Functions Python worker library over a function app, as the host would.

Runs under the worker environment's interpreter (``.venv-worker``: Python >= 3.13 with
``azure-functions-runtime`` and the app's ``requirements.txt``), never under the project's own
venv; ``tests/integration/test_worker_conformance.py`` starts it as a subprocess.

It reads one JSON request on stdin and prints one JSON answer on stdout. The request names the
app folder and the invocations to make; each invocation is shaped like the host's
``InvocationRequest``: the trigger's ``TypedData`` (``collection_bytes`` given as base64 strings,
or ``json`` / ``string`` text) and the trigger metadata as JSON texts. The worker's own start-up
handler indexes the app (``worker_init_request``: the binding registry, ``index_function_app``,
``process_indexed_function`` with its validation), and its own invocation handler decodes the
bindings (``invocation_request``: ``from_incoming_proto`` and the azure-functions converters)
and calls the function.

The worker gets its RPC message classes from the proxy worker that embeds it; the classes below
stand in for them with the same field names, enum values and ``WhichOneof`` behaviour.
"""

import asyncio
import base64
import json
import sys
import uuid
from importlib import metadata
from typing import Any


class _Message:
    """A protobuf message stand-in: keyword fields in, attributes out, one oneof group."""

    _oneof: tuple[str, tuple[str, ...]] = ("", ())

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def WhichOneof(self, group: str) -> str | None:
        name, members = self._oneof
        if group != name:
            raise ValueError(f"{type(self).__name__} has no oneof {group!r}")
        return next((m for m in members if m in self.__dict__), None)


class TypedData(_Message):
    _oneof = (
        "data",
        (
            "string",
            "json",
            "bytes",
            "stream",
            "http",
            "int",
            "double",
            "collection_bytes",
            "collection_string",
            "collection_double",
            "collection_sint64",
            "model_binding_data",
            "collection_model_binding_data",
        ),
    )


class ParameterBinding(_Message):
    _oneof = ("rpc_data", ("data", "rpc_shared_memory"))


class BindingInfo(_Message):
    # enum Direction { in = 0; out = 1; inout = 2; }  enum DataType { undefined = 0; string = 1; ... }
    out, inout = 1, 2
    undefined, string, binary, stream = 0, 1, 2, 3


class StatusResult(_Message):
    # enum Status { Failure = 0; Success = 1; Cancelled = 2; }
    Failure, Success, Cancelled = 0, 1, 2


class CollectionBytes(_Message):
    pass


class RpcException(_Message):
    pass


class RpcRetryOptions(_Message):
    pass


class RpcFunctionMetadata(_Message):
    pass


class WorkerMetadata(_Message):
    pass


class WorkerInitResponse(_Message):
    pass


class FunctionMetadataResponse(_Message):
    pass


class FunctionLoadResponse(_Message):
    pass


class InvocationResponse(_Message):
    pass


class RpcTraceContext(_Message):
    pass


class RetryContext(_Message):
    pass


# The worker reads the message classes as attributes of the module it is given: this one.
protos: Any = sys.modules[__name__]


def _request(kind: str, message: Any) -> Any:
    """A ``StreamingMessage`` as the proxy worker hands it to the library."""
    return _Message(request=_Message(**{kind: message}), properties={"host": "127.0.0.1", "protos": protos})


def _typed_data(spec: dict[str, Any]) -> Any:
    if "collection_bytes" in spec:
        bodies = [base64.b64decode(b) for b in spec["collection_bytes"]]
        return protos.TypedData(collection_bytes=protos.CollectionBytes(bytes=bodies))
    if "json" in spec:
        return protos.TypedData(json=spec["json"])
    return protos.TypedData(string=spec["string"])


def _status(result: Any) -> dict[str, Any]:
    ok = result.status == protos.StatusResult.Success
    exception = getattr(result, "exception", None)
    return {"ok": ok, "message": None if ok or exception is None else exception.message}


def _seconds(value: Any) -> float | None:
    return None if value is None else value.total_seconds()


def _describe(function: Any) -> dict[str, Any]:
    retry = function.retry_options
    return {
        "name": function.name,
        "function_id": function.function_id,
        "bindings": {
            name: {"type": b.type, "direction": b.direction, "data_type": b.data_type}
            for name, b in function.bindings.items()
        },
        "retry": None
        if retry is None
        else {
            "strategy": retry.retry_strategy,
            "max_retry_count": retry.max_retry_count,
            "minimum_interval": _seconds(getattr(retry, "minimum_interval", None)),
            "maximum_interval": _seconds(getattr(retry, "maximum_interval", None)),
            "delay_interval": _seconds(getattr(retry, "delay_interval", None)),
        },
    }


async def _drive(request: dict[str, Any]) -> dict[str, Any]:
    from azure_functions_runtime import handle_event

    answer: dict[str, Any] = {
        "python": ".".join(map(str, sys.version_info[:3])),
        "worker": metadata.version("azure-functions-runtime"),
        "azure_functions": metadata.version("azure-functions"),
    }
    init = await handle_event.worker_init_request(
        _request(
            "worker_init_request",
            _Message(capabilities={}, function_app_directory=request["app_dir"]),
        )
    )
    answer["init"] = _status(init.result)
    if not answer["init"]["ok"]:
        return answer
    listed = await handle_event.functions_metadata_request(_request("functions_metadata_request", _Message()))
    functions = {f.name: f for f in listed.function_metadata_results or []}
    answer["functions"] = [_describe(f) for f in functions.values()]
    for function in functions.values():
        loaded = await handle_event.function_load_request(
            _request("function_load_request", _Message(function_id=function.function_id, metadata=function))
        )
        if loaded.result.status != protos.StatusResult.Success:
            answer["init"] = _status(loaded.result)
            return answer
    answer["invocations"] = []
    for invocation in request.get("invocations", []):
        function = functions[invocation["function"]]
        retry = function.retry_options
        response = await handle_event.invocation_request(
            _request(
                "invocation_request",
                _Message(
                    invocation_id=str(uuid.uuid4()),
                    function_id=function.function_id,
                    input_data=[
                        protos.ParameterBinding(name=name, data=_typed_data(spec))
                        for name, spec in invocation["input_data"].items()
                    ],
                    trigger_metadata={
                        name: protos.TypedData(json=text)
                        for name, text in invocation.get("trigger_metadata", {}).items()
                    },
                    trace_context=protos.RpcTraceContext(trace_parent="", trace_state="", attributes={}),
                    retry_context=protos.RetryContext(
                        retry_count=0,
                        max_retry_count=0 if retry is None else retry.max_retry_count,
                        exception=None,
                    ),
                ),
            )
        )
        answer["invocations"].append(_status(response.result))
    return answer


def main() -> int:
    request = json.load(sys.stdin)
    sys.path.insert(0, request["app_dir"])  # as the host starts the worker in the app's folder
    print(json.dumps(asyncio.run(_drive(request))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

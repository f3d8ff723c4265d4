"""What the Azure Functions Python worker checks when it loads an app, for the local host.

The worker (``azure_functions_worker`` on Python 3.11/3.12, ``azure_functions_runtime`` on 3.13+,
``Registry.add_indexed_function`` in both) reads each function's annotations with
``typing.get_type_hints`` and refuses the function, and with it the whole app, when:

* a binding is ``inout``, or ``$return`` is not an output;
* the Python parameters and the declared bindings differ (``context`` aside);
* a ``context`` parameter is annotated with anything but ``azure.functions.Context``;
* a binding parameter's annotation is neither a class nor a ``typing`` generic (so
  ``list[EventHubEvent]``, a builtin generic, is refused while ``typing.List[EventHubEvent]``
  loads);
* ``azure.functions.Out`` is used for an input binding, or missing on an output one;
* the binding's converter does not accept the annotated type (``str``/``bytes`` go to the
  generic binding);
* a ``$return`` binding has a return annotation that is not a class.

The local host runs the same checks so that ``python -m pipeline ingest`` fails where ``func
start`` would. tests/integration/test_worker_conformance.py runs the real worker library on the
same apps and checks that both load or refuse them alike.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any

import azure.functions as func

# BindingInfo.Direction in the host protocol (azure.functions' BindingDirection values).
_OUT, _INOUT = 1, 2
# Origins of typing aliases the worker does not count as generic types.
_NOT_GENERIC = (typing.Union, tuple, typing.ClassVar, collections.abc.Callable)


class FunctionLoadError(ValueError):
    """The worker would not load this function; the message is the worker's own wording."""

    def __init__(self, function_name: str, message: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {message}")


def is_generic(annotation: Any) -> bool:
    """Whether the worker takes ``annotation`` for a generic type (its ``is_generic_type``).

    A ``typing`` alias such as ``typing.List[X]`` is; a builtin generic (``list[X]``, a
    ``types.GenericAlias``), a union, a tuple, a callable or a ``ClassVar`` is not.
    """
    if isinstance(annotation, type):
        return issubclass(annotation, typing.Generic)
    if isinstance(annotation, types.GenericAlias | types.UnionType):
        return False
    origin = typing.get_origin(annotation)
    return origin is not None and origin not in _NOT_GENERIC


def _is_out(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) if is_generic(annotation) else None
    candidate = origin if origin is not None else annotation
    return isinstance(candidate, type) and candidate.__name__ == "Out"


def _converter(binding_type: str) -> Any:
    registry = func.get_binding_registry()
    return registry.get(binding_type) if registry is not None else None


def _has_implicit_output(binding_type: str) -> bool:
    converter = _converter(binding_type)
    if converter is None:  # the worker's generic binding: implicit output, except durableClient
        return binding_type != "durableClient"
    return bool(getattr(converter, "has_implicit_output", lambda: False)())


def _accepts(binding_type: str, annotation: Any, *, output: bool) -> bool:
    converter = _converter(binding_type)
    if converter is None:  # the worker's generic binding
        kinds = (str, bytes, bytearray) if output else (str, bytes)
        return isinstance(annotation, type) and issubclass(annotation, kinds)
    check = converter.check_output_type_annotation if output else converter.check_input_type_annotation
    return bool(check(annotation))


def check_function_loads(function: Any) -> None:
    """Refuse ``function`` (from ``FunctionApp.get_functions()``) as the worker would.

    Raises:
        FunctionLoadError: the worker's reason, e.g. ``cannot load the ingest function: binding
            events has invalid non-type annotation list[...]``.
    """
    user_function = function.get_user_function()
    name = function.get_function_name()
    try:
        annotations = typing.get_type_hints(user_function)
    except Exception as exc:  # the worker fails indexing with this same exception
        raise FunctionLoadError(
            name, f"its annotations do not resolve: {type(exc).__name__}: {exc}"
        ) from None
    params = dict(inspect.signature(user_function).parameters)
    bound: dict[str, Any] = {}
    has_return_binding = False
    for binding in function.get_bindings():
        if binding.direction == _INOUT:
            raise FunctionLoadError(name, '"inout" bindings are not supported')
        if binding.name == "$return":
            if binding.direction != _OUT:
                raise FunctionLoadError(name, '"$return" binding must have direction set to "out"')
            has_return_binding = True
        else:
            bound[binding.name] = binding
    if "context" in params and "context" not in bound:
        params.pop("context")
        context = annotations.get("context", func.Context)
        if not isinstance(context, type) or context.__name__ != "Context":
            raise FunctionLoadError(
                name,
                f'the "context" parameter is expected to be of type azure.functions.Context, got {context!r}',
            )
    if unbound := set(params) - set(bound):
        where = "declared in Python but not in the bindings"
        raise FunctionLoadError(name, f"the following parameters are {where}: {unbound!r}")
    if missing := set(bound) - set(params):
        where = "declared in the bindings but not in Python"
        raise FunctionLoadError(name, f"the following parameters are {where}: {missing!r}")
    for param, binding in bound.items():
        if param in annotations:
            _check_parameter(name, param, binding, annotations[param])
    returned = annotations.get("return")
    if has_return_binding and "return" in annotations and not isinstance(returned, type):
        raise FunctionLoadError(name, f"has invalid non-type return annotation {returned!r}")


def _check_parameter(name: str, param: str, binding: Any, annotation: Any) -> None:
    output, is_out = binding.direction == _OUT, _is_out(annotation)
    pytype = annotation
    if is_out:
        args = typing.get_args(annotation)
        if len(args) != 1:
            raise FunctionLoadError(name, f"binding {param} has invalid Out annotation {annotation!r}")
        pytype = args[0]
    if not isinstance(pytype, type) and not is_generic(pytype):
        raise FunctionLoadError(name, f"binding {param} has invalid non-type annotation {annotation!r}")
    if output and not is_out:
        raise FunctionLoadError(
            name,
            f'binding {param} is declared to have the "out" direction, but its annotation in Python is '
            "not a subclass of azure.functions.Out",
        )
    if is_out and not output:
        raise FunctionLoadError(
            name,
            f'binding {param} is declared to have the "in" direction, but its annotation '
            "is azure.functions.Out",
        )
    binding_type = str(binding.type)
    if pytype in (str, bytes) and not _has_implicit_output(binding_type):
        binding_type = "generic"
    if not _accepts(binding_type, pytype, output=output):
        raise FunctionLoadError(
            name,
            f'type of {param} binding "{binding.type}" does not match its Python annotation '
            f'"{getattr(pytype, "__name__", pytype)}"',
        )

"""mypy plugin: a call of an ``@task`` function accepts the ``XComArg`` of an upstream task.

Why: inside a DAG body ``load(extract())`` passes ``extract()``'s ``XComArg``; Airflow resolves it to
the upstream task's return value before ``load`` runs, so ``load``'s annotation (``list[dict]``) is
what the function receives. Airflow's ``Task`` protocol types the call as ``Callable[FParams,
XComArg]``, which makes mypy reject every such wiring line (its own source tree fixes this with a
development-only plugin that is not shipped in the wheel). This plugin widens each parameter of a
task *call* to ``T | XComArg``; the function body is still checked against ``T``, and a value of
the wrong type passed directly is still an error.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.checker import TypeChecker
from mypy.nodes import TypeInfo
from mypy.plugin import MethodContext, MethodSigContext, Plugin
from mypy.types import CallableType, FunctionLike, Instance, Type, UnionType

# The @task call in Airflow 3's task SDK: the protocol mypy sees and the class that implements it.
_TASK_CALLS = frozenset(
    {
        "airflow.sdk.bases.decorator.Task.__call__",
        "airflow.sdk.bases.decorator._TaskDecorator.__call__",
    }
)
_XCOM_MODULE = "airflow.sdk.definitions.xcom_arg"
_XCOM_ARG = f"{_XCOM_MODULE}.XComArg"


def _accept_xcom_args(ctx: MethodSigContext) -> FunctionLike:
    """Each parameter of the task call also takes an ``XComArg`` (resolved by Airflow at run time)."""
    signature = ctx.default_signature
    if not isinstance(signature, CallableType):
        return signature
    # The call's own return type is the XComArg (a name lookup can fail for modules mypy loaded
    # only through an import cycle, so the type is taken from the signature instead).
    xcom_arg = signature.ret_type
    if not (isinstance(xcom_arg, Instance) and xcom_arg.type.fullname == _XCOM_ARG):
        return signature
    widened = [UnionType.make_union([arg, xcom_arg]) for arg in signature.arg_types]
    return signature.copy_modified(arg_types=widened)


def _plain_xcom_arg(ctx: MethodContext) -> Type:
    """The call returns a ``PlainXComArg`` (what ``XComArg(operator)`` builds at run time), the
    kind that ``task()["key"]`` indexes for a ``multiple_outputs`` task."""
    if not isinstance(ctx.api, TypeChecker):  # the checker is the only implementation there is
        return ctx.default_return_type
    module = ctx.api.modules.get(_XCOM_MODULE)
    symbol = module.names.get("PlainXComArg") if module is not None else None
    if symbol is None or not isinstance(symbol.node, TypeInfo):
        return ctx.default_return_type
    return Instance(symbol.node, [])


class AirflowTaskCallPlugin(Plugin):
    """Registers the hooks for the @task call only."""

    def get_method_signature_hook(self, fullname: str) -> Callable[[MethodSigContext], FunctionLike] | None:
        return _accept_xcom_args if fullname in _TASK_CALLS else None

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        return _plain_xcom_arg if fullname in _TASK_CALLS else None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point; the hook API used here is stable across mypy 1.x and 2.x."""
    return AirflowTaskCallPlugin

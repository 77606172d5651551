"""A CloudFormation template resolved for one set of parameters, for static checks.

moto does not apply queue policies, so their meaning is checked here: conditions are evaluated,
``Fn::If``/``AWS::NoValue`` are applied, parameters and pseudo parameters are substituted, and
references to resources become readable tokens: ``{InputQueue}`` for ``!Ref InputQueue`` and
``{InputQueue.Arn}`` for ``!GetAtt InputQueue.Arn``. Only the intrinsic functions the templates
use are supported; anything else raises, so the resolver cannot silently misread a template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PSEUDO_PARAMETERS = {
    "AWS::AccountId": "111122223333",
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::StackName": "detector",
}
_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class UnsupportedIntrinsicError(NotImplementedError):
    """The template uses an intrinsic function this resolver does not know."""


def resolve_resources(
    template: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """The resources that exist for ``parameters``, with their properties resolved."""
    resolver = _Resolver(template, parameters or {})
    resources: dict[str, dict[str, Any]] = {}
    for name, resource in template["Resources"].items():
        condition = resource.get("Condition")
        if condition is not None and not resolver.condition(condition):
            continue
        resources[name] = {
            "Type": resource["Type"],
            "Properties": resolver.value(resource.get("Properties", {})),
        }
    return resources


class _Resolver:
    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        declared = template.get("Parameters", {})
        unknown = set(parameters) - set(declared)
        if unknown:
            raise KeyError(f"not parameters of the template: {sorted(unknown)}")
        self._parameters = {
            name: str(parameters.get(name, spec.get("Default", "")))
            for name, spec in declared.items()
        }
        self._conditions: Mapping[str, Any] = template.get("Conditions", {})
        self._resources = set(template["Resources"])

    def condition(self, name: str) -> bool:
        return self._truth(self._conditions[name])

    def _truth(self, node: Any) -> bool:
        (function, argument), *rest = node.items()
        assert not rest, f"a condition has one function: {node}"
        if function == "Fn::Equals":
            left, right = (self.value(side) for side in argument)
            return bool(left == right)
        if function == "Fn::Not":
            return not self._truth(argument[0])
        if function == "Fn::And":
            return all(self._truth(part) for part in argument)
        if function == "Fn::Or":
            return any(self._truth(part) for part in argument)
        if function == "Condition":
            return self.condition(argument)
        raise UnsupportedIntrinsicError(function)

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._resources:
            return "{" + name + "}"
        raise KeyError(f"!Ref to an unknown name: {name}")

    def _sub(self, text: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            variable = match.group(1)
            if "." in variable:
                return "{" + variable + "}"
            return str(self._ref(variable))

        return _SUB_VARIABLE.sub(substitute, text)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            items = (self.value(item) for item in node)
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                return "{" + ".".join(argument) + "}"
            if key == "Fn::If":
                condition, when_true, when_false = argument
                return self.value(when_true if self.condition(condition) else when_false)
            if key == "Fn::Sub":
                if not isinstance(argument, str):
                    raise UnsupportedIntrinsicError("Fn::Sub with a variable map")
                return self._sub(argument)
            if key.startswith("Fn::"):
                raise UnsupportedIntrinsicError(key)
        resolved = {key: self.value(item) for key, item in node.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

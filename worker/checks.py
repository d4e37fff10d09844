"""Checks of the configuration against the live product databases (for `validate`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.base import ConnectorError
from worker.app import ConnectorFactory, url_variable
from worker.configload import Config
from worker.errors import ConfigProblem
from worker.targets import table_for


@dataclass
class LiveResult:
    problems: list[ConfigProblem] = field(default_factory=list)  # fix the config or schema
    unreachable: list[str] = field(default_factory=list)  # fix the network or server
    warnings: list[str] = field(default_factory=list)
    checked: int = 0


def check_live(config: Config, env: Mapping[str, str]) -> LiveResult:
    """Open every customer × product database and compare it with its mapping."""
    result = LiveResult()
    factory = ConnectorFactory(env, pepper=b"validate-only")
    for customer, mapping in config.pairs():
        file = f"{config.directory.name}/products/{mapping.product}.yaml"
        variable = url_variable(customer, mapping)
        pair = f"{customer.customer} × {mapping.product}"
        try:
            connector = factory(customer, mapping)
        except ConnectorError as exc:
            result.problems.append(
                ConfigProblem(
                    f"{config.directory.name}/customers/{customer.customer}.yaml",
                    f"products.{mapping.product}",
                    str(exc),
                )
            )
            continue
        try:
            connector.open()
            for name, subject in mapping.subjects.items():
                for problem in connector.verify([table_for(subject, mapping)]):
                    text = f"{problem} ({pair}, {variable}); create it there or correct the mapping"
                    if problem.fatal:
                        result.problems.append(ConfigProblem(file, f"subjects.{name}", text))
                    else:
                        result.warnings.append(f"{file}: subjects.{name}: {problem}")
            result.checked += 1
        except ConnectorError as exc:
            result.unreachable.append(f"{pair}: {exc}")
        finally:
            connector.close()
    return result

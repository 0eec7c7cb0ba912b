"""Declared hyperparameters and versioned hyperparameter sets.

A :class:`HyperparamSpace` is read from YAML (``adaptrec/configs/hyperparams.yaml``
by default) and declares each tunable value's bounds, step and initial value.
A :class:`HyperparamSet` is one assignment of values. Its version is a short hash of
the values, so the same values always carry the same version. The JSON form
``{"version": ..., "values": {...}}`` is shared by the trainer, the model server and
the operator.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

# Values are rounded before hashing so that 0.30000000000000004 and 0.3, which
# differ only by floating-point noise from repeated steps, share one version.
_VERSION_DECIMALS = 9


class HyperparamError(ValueError):
    """A hyperparameter declaration or set is invalid."""


@dataclass(frozen=True)
class HyperparamSpec:
    """Declaration of one tunable hyperparameter."""

    name: str
    min: float
    max: float
    step: float
    initial: float

    def __post_init__(self) -> None:
        for field in ("min", "max", "step", "initial"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise HyperparamError(
                    f"hyperparameter {self.name!r}: {field} must be a number, "
                    f"got {value!r}"
                )
            if not math.isfinite(value):
                raise HyperparamError(
                    f"hyperparameter {self.name!r}: {field} must be finite, "
                    f"got {value!r}"
                )
        if not self.min < self.max:
            raise HyperparamError(
                f"hyperparameter {self.name!r}: min ({self.min}) must be less than "
                f"max ({self.max})"
            )
        if not self.step > 0:
            raise HyperparamError(
                f"hyperparameter {self.name!r}: step must be positive, got {self.step}"
            )
        if not self.min <= self.initial <= self.max:
            raise HyperparamError(
                f"hyperparameter {self.name!r}: initial ({self.initial}) must lie "
                f"within [{self.min}, {self.max}]"
            )

    def clip(self, value: float) -> float:
        """Clip ``value`` into ``[min, max]``."""
        return min(self.max, max(self.min, value))

    def grid(self) -> list[float]:
        """Return every value reachable from ``min`` in whole steps, up to ``max``."""
        count = int(math.floor((self.max - self.min) / self.step + 1e-9)) + 1
        return [
            round(self.min + i * self.step, _VERSION_DECIMALS) for i in range(count)
        ]

    def snap(self, value: float) -> float:
        """Return the grid value nearest to ``value``."""
        index = round((self.clip(value) - self.min) / self.step)
        grid = self.grid()
        return grid[max(0, min(len(grid) - 1, index))]


class HyperparamSpace:
    """An ordered collection of :class:`HyperparamSpec` with unique names."""

    def __init__(self, specs: list[HyperparamSpec]) -> None:
        if not specs:
            raise HyperparamError("a hyperparameter space needs at least one entry")
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise HyperparamError(
                f"hyperparameter names must be unique; duplicated: {duplicates}"
            )
        self.specs = list(specs)
        self._by_name = {spec.name: spec for spec in specs}

    def __iter__(self) -> Iterator[HyperparamSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, name: str) -> HyperparamSpec:
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    @classmethod
    def from_dicts(
        cls, entries: list[Mapping[str, Any]], source: str = ""
    ) -> HyperparamSpace:
        """Build a space from ``[{name, min, max, step, initial}, ...]``."""
        where = f" in {source}" if source else ""
        if not isinstance(entries, list):
            raise HyperparamError(
                f"hyperparameters{where} must be a list of entries, "
                f"got {type(entries).__name__}"
            )
        specs = []
        required = ("name", "min", "max", "step", "initial")
        for position, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise HyperparamError(
                    f"hyperparameter entry {position}{where} must be a mapping "
                    f"with keys {list(required)}"
                )
            missing = [key for key in required if key not in entry]
            if missing:
                raise HyperparamError(
                    f"hyperparameter entry {position}{where} is missing {missing}"
                )
            unknown = sorted(set(entry) - set(required))
            if unknown:
                raise HyperparamError(
                    f"hyperparameter entry {position}{where} has unknown keys "
                    f"{unknown}; allowed: {list(required)}"
                )
            specs.append(HyperparamSpec(**{key: entry[key] for key in required}))
        return cls(specs)

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> HyperparamSpace:
        """Read a space from a YAML file with a top-level ``hyperparameters`` list.

        Without ``path``, reads the packaged default.
        """
        if path is None:
            text = (
                resources.files("adaptrec") / "configs" / "hyperparams.yaml"
            ).read_text(encoding="utf-8")
            source = "the packaged hyperparams.yaml"
        else:
            source = str(path)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise HyperparamError(
                    f"hyperparameter file {source} not found"
                ) from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise HyperparamError(f"{source} is not valid YAML: {error}") from None
        if not isinstance(document, dict) or "hyperparameters" not in document:
            raise HyperparamError(
                f"{source} must be a mapping with a top-level 'hyperparameters' list"
            )
        return cls.from_dicts(document["hyperparameters"], source=source)

    def initial(self) -> HyperparamSet:
        return HyperparamSet({spec.name: spec.initial for spec in self.specs})

    def validate(self, values: Mapping[str, Any]) -> HyperparamSet:
        """Check that ``values`` names every hyperparameter once, within bounds."""
        if not isinstance(values, Mapping):
            raise HyperparamError(
                f"hyperparameter values must be a mapping, got {type(values).__name__}"
            )
        missing = [name for name in self.names if name not in values]
        unknown = sorted(set(values) - set(self.names))
        if missing or unknown:
            raise HyperparamError(
                f"hyperparameter values must name exactly {self.names}; "
                f"missing {missing}, unknown {unknown}"
            )
        checked: dict[str, float] = {}
        for spec in self.specs:
            value = values[spec.name]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise HyperparamError(
                    f"hyperparameter {spec.name!r} must be a number, got {value!r}"
                )
            if not math.isfinite(value) or not spec.min <= value <= spec.max:
                raise HyperparamError(
                    f"hyperparameter {spec.name!r} = {value} lies outside "
                    f"[{spec.min}, {spec.max}]"
                )
            checked[spec.name] = float(value)
        return HyperparamSet(checked)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "min": s.min,
                "max": s.max,
                "step": s.step,
                "initial": s.initial,
            }
            for s in self.specs
        ]


class HyperparamSet(Mapping[str, float]):
    """One immutable assignment of hyperparameter values with a content version."""

    def __init__(self, values: Mapping[str, float]) -> None:
        self._values = {
            name: round(float(value), _VERSION_DECIMALS)
            for name, value in values.items()
        }

    def __getitem__(self, name: str) -> float:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"HyperparamSet(version={self.version!r}, values={self._values!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HyperparamSet):
            return self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.version)

    @property
    def values_dict(self) -> dict[str, float]:
        return dict(self._values)

    @property
    def version(self) -> str:
        """First 12 hex digits of the SHA-256 of the canonical JSON values."""
        canonical = json.dumps(self._values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    def to_json_dict(self) -> dict[str, Any]:
        return {"version": self.version, "values": dict(sorted(self._values.items()))}

    @classmethod
    def from_json_dict(
        cls, document: Mapping[str, Any], space: HyperparamSpace | None = None
    ) -> HyperparamSet:
        """Parse ``{"version", "values"}``; check bounds when ``space`` is given.

        A ``version`` that does not match the values is rejected, because it means
        the document was edited by hand or corrupted.
        """
        if not isinstance(document, Mapping) or "values" not in document:
            raise HyperparamError(
                'a hyperparameter set must be {"version": str, "values": {...}}'
            )
        values = document["values"]
        parsed = space.validate(values) if space is not None else cls(_numbers(values))
        claimed = document.get("version")
        if claimed is not None and claimed != parsed.version:
            raise HyperparamError(
                f"hyperparameter set version {claimed!r} does not match its values "
                f"(expected {parsed.version!r})"
            )
        return parsed


def _numbers(values: Any) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise HyperparamError(
            f"hyperparameter values must be a mapping, got {type(values).__name__}"
        )
    result = {}
    for name, value in values.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise HyperparamError(
                f"hyperparameter {name!r} must be a number, got {value!r}"
            )
        if not math.isfinite(value):
            raise HyperparamError(
                f"hyperparameter {name!r} must be finite, got {value!r}"
            )
        result[str(name)] = float(value)
    return result

"""Defaults in code, short YAML overrides, ``key=value`` from the command line.

Every configurable concern is a ``@dataclass`` (possibly nested). `load_config` starts
from its defaults, applies a YAML file, then dotted ``key=value`` overrides, and checks
every key, so a typo is an error instead of a silently ignored setting. The resolved
config is what gets saved beside every run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from data_prep.atomic import atomic_path
from data_prep.errors import InputError

T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Turn YAML/CLI values into the field's type (tuples, nested dataclasses, numbers)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise InputError(f"config key {key!r} must be a mapping")
        return from_dict(hint, value, prefix=f"{key}.")
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except (InputError, TypeError, ValueError):
                continue
        raise InputError(f"config key {key!r}: cannot use value {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise InputError(f"config key {key!r} must be true or false, got {value!r}")
        return bool(value)
    if hint in (int, float):
        try:
            number = hint(value)
        except (TypeError, ValueError):
            raise InputError(f"config key {key!r} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise InputError(f"config key {key!r} must be a finite number, got {value!r}")
        if hint is int and isinstance(value, float) and value != int(value):
            raise InputError(f"config key {key!r} must be an integer, got {value!r}")
        return number
    if hint is str:
        return str(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise InputError(f"config key {key!r} must be a mapping")
        return dict(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict, rejecting unknown keys."""
    types = _field_types(cls)
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise InputError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}")
    kwargs = {k: _coerce(v, types[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"bad config for {cls.__name__}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain, JSON/YAML-safe dict of a dataclass config (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(config)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-3", "model.depth=4"]`` -> nested dict, values parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"override {item!r} is not key=value")
        value = yaml.safe_load(raw) if raw else ""
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                above = ".".join(parts[: i + 1])
                raise InputError(f"override {item!r}: {above} was set to a value, not a mapping")
        if isinstance(node.get(parts[-1]), dict) and not isinstance(value, dict):
            raise InputError(f"override {item!r}: {key} is a group of settings, not a value")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise InputError("config file not found", path=path) from None
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else "invalid YAML"
        raise InputError(f"invalid YAML: {first}", path=path) from None
    if not isinstance(data, dict):
        raise InputError("config file must hold a mapping at top level", path=path)
    return data


#: the configs shipped in the package (the repository's ``configs`` links here)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

#: config class name -> its family of presets under `CONFIG_DIR`
CONFIG_FAMILIES = {
    "ImageConfig": "prep",
    "TrainConfig": "train",
    "SimConfig": "sim",
    "BenchConfig": "benchmark",
    "LearngeneConfig": "learngene",
    "FedConfig": "federated",
}


def find_config(name: str | Path, family: str | None) -> Path:
    """A YAML path as given if it exists, else a shipped preset, from any directory.

    ``cnn_small``, ``cnn_small.yaml`` and ``configs/train/cnn_small.yaml`` (the paths the
    docs use, relative to the repository) all find ``CONFIG_DIR/train/cnn_small.yaml``.
    """
    path = Path(name)
    if path.is_file():
        return path
    candidates = [CONFIG_DIR.parent / path]  # configs/<family>/<name>.yaml
    if family is not None:
        stem = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
        candidates.append(CONFIG_DIR / family / stem)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if family is None:
        raise InputError("config file not found", path=name)
    known = ", ".join(sorted(p.stem for p in (CONFIG_DIR / family).glob("*.yaml")))
    raise InputError(f"no such config file or {family} preset (presets: {known})", path=name)


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None
) -> T:
    """Defaults of ``cls`` <- YAML file ``path`` (or preset name) <- ``key=value`` overrides."""
    data = to_dict(cls())
    if path is not None:
        data = merge(data, read_yaml(find_config(path, CONFIG_FAMILIES.get(cls.__name__))))
    if overrides:
        data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (with the git SHA, as DINOv2 does)."""
    data = {"git_sha": git_sha(), **to_dict(config)}
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))


def git_sha() -> str:
    """Commit of the code that ran, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_hash(config: Any) -> str:
    """Stable short hash of a config, for caching artifacts that depend on it."""
    import hashlib

    text = json.dumps(to_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]

"""Profile loading: settings from defaults, profiles, env and `--set`, with sources.

`resolve`, `load_settings`: defaults -> profile chain (`extends:`, base first) ->
env (`MMBOT_A__B=..`, plus the flat MMBOT_REDIS_URL / MMBOT_ARTIFACTS_URL) ->
`--set a.b=<yaml>`. Mappings merge key by key; lists are replaced whole; in a
mapping of named entries (symbols, fee tiers, KPI bounds, tuning bounds) `null`
removes an entry. Every leaf keeps its source: `default`, `profile:<path>`,
`env:MMBOT_..`, `cli:--set a.b=c`. The schema itself is `bot/config.py`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from bot.config import (
    SECRET_MASK,
    InconsistentSettings,
    Settings,
    annotation_at,
    annotation_kind,
    child_annotation,
)

#
#
# Layers, lowest first: defaults -> profile chain (base first) -> env -> `--set`.
# The raw layers are merged as plain data and validated once, so pydantic sees the
# final picture and every error can be traced back to the layer that set its key.

ENV_PREFIX: Final = "MMBOT_"
# Flat names from DESIGN §1, kept because deployments already export them.
ENV_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "MMBOT_ARTIFACTS_URL": ("storage", "artifacts_url"),
    "MMBOT_REDIS_URL": ("storage", "redis_url"),
}
PACKAGED_PROFILES: Final = Path(__file__).resolve().parents[1] / "profiles"
DEFAULT_SOURCE: Final = "default"

Path_ = tuple[str, ...]


class ConfigError(Exception):
    """A setting that cannot be used, with what to fix and where.

    `key` is the dotted setting (None for file-level problems), `file` the profile
    path that set it last, or "defaults", "env", "cli"; `line` is 1-based when known.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        file: str | None = None,
        line: int | None = None,
        suggestion: str | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.key = key
        self.file = file
        self.line = line
        self.suggestion = suggestion
        self.source = source
        self.others: tuple[ConfigError, ...] = ()
        super().__init__(self.describe())

    def describe(self) -> str:
        """This error alone, without the count of the others."""
        where = f"{self.file}:{self.line}" if self.file and self.line else self.file
        if self.source and self.source.startswith(("env:", "cli:")):
            where = self.source  # names the variable or the --set that did it
        text = f"{where}: {self.message}" if where else self.message
        if self.suggestion:
            text += f" (did you mean {self.suggestion!r}?)"
        return text

    def __str__(self) -> str:
        more = f" (and {len(self.others)} more)" if self.others else ""
        return self.describe() + more

    def all(self) -> tuple[ConfigError, ...]:
        return (self, *self.others)


@dataclass(frozen=True, slots=True)
class Resolved:
    """Settings and, for every dotted leaf key, the layer that set it."""

    settings: Settings
    sources: dict[str, str]
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    old: Any
    new: Any
    old_source: str
    new_source: str


# ---- the schema as a tree of annotations


def _is_path_in(annotation: Any, segments: Sequence[str]) -> bool:
    for segment in segments:
        annotation = child_annotation(annotation, segment)
        if annotation is None:
            return False
    return True


def _is_secret_path(path: Sequence[str]) -> bool:
    # Anything under `secrets` but its two plain fields, so a mistyped secret key is
    # still treated as secret.
    return bool(path) and path[0] == "secrets" and tuple(path[1:]) not in (("provider",), ("path",))


def _suggest(path: Path_) -> str | None:
    kind, model = annotation_kind(annotation_at(path[:-1]))
    if kind != "model":
        return None
    match = difflib.get_close_matches(path[-1], list(model.model_fields), n=1, cutoff=0.6)
    return ".".join((*path[:-1], match[0])) if match else None


# ---- YAML: no implicit timestamps (a start time stays a string), no duplicate keys


class _ProfileLoader(yaml.SafeLoader):
    pass


_ProfileLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_ProfileLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _yaml_error(exc: yaml.YAMLError, label: str, what: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return ConfigError(
        f"malformed YAML {what}: {problem}",
        file=label,
        line=mark.line + 1 if mark is not None else None,
    )


def _key_lines(node: yaml.Node | None, prefix: Path_ = ()) -> dict[Path_, int]:
    lines: dict[Path_, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = (*prefix, str(key_node.value))
                lines[path] = key_node.start_mark.line + 1
                lines.update(_key_lines(value_node, path))
    return lines


# ---- profiles


@dataclass(frozen=True, slots=True)
class _Profile:
    path: Path
    label: str
    data: dict[str, Any]
    lines: dict[Path_, int]
    extends: str | None


def _display(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def profile_dirs() -> tuple[Path, ...]:
    """Where profile names are looked up: ./profiles, then the packaged profiles."""
    dirs = [Path.cwd() / "profiles", PACKAGED_PROFILES]
    unique: list[Path] = []
    for folder in dirs:
        if folder.resolve() not in unique:
            unique.append(folder.resolve())
    return tuple(unique)


def _looks_like_path(ref: str | Path) -> bool:
    text = str(ref)
    return (
        isinstance(ref, Path) or "/" in text or os.sep in text or text.endswith((".yaml", ".yml"))
    )


def find_profile(ref: str | Path, near: Path | None = None) -> Path:
    """A profile name ('demo') or a YAML path -> the file. `near` is the directory of
    a profile that `extends:` this one; it is searched first."""
    if _looks_like_path(ref):
        given = Path(ref).expanduser()
        candidates = [near / given] if near is not None and not given.is_absolute() else []
        candidates.append(given)
    else:
        folders = ([near] if near is not None else []) + list(profile_dirs())
        candidates = [folder / f"{ref}{ext}" for folder in folders for ext in (".yaml", ".yml")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    searched = ", ".join(_display(c.parent) for c in candidates[::2] or candidates)
    if _looks_like_path(ref):
        raise ConfigError(f"profile {str(ref)!r} not found (searched {searched})", file=str(ref))
    raise _unknown_profile(str(ref), folders, searched)


def _unknown_profile(name: str, folders: Sequence[Path], searched: str) -> ConfigError:
    """'unknown profile 'dmeo' (did you mean 'demo'?); profiles: base, canary, ...'."""
    known = sorted({f.stem for folder in folders for f in folder.glob("*.y*ml") if f.is_file()})
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(known) or "none"
    return ConfigError(f"unknown profile {name!r}{hint}; profiles: {listed} (searched {searched})")


def _read_profile(path: Path) -> _Profile:
    label = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read profile: {exc.strerror}", file=label) from None
    loader = _ProfileLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, label, "in profile") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"a profile is a mapping of settings, not a {type(data).__name__}", file=label, line=1
        )
    extends = data.pop("extends", None)
    if extends is not None and not isinstance(extends, str):
        raise ConfigError(
            "extends must name one profile or YAML file",
            key="extends",
            file=label,
            line=_key_lines(node).get(("extends",)),
        )
    return _Profile(path, label, data, _key_lines(node), extends)


def _profile_chain(ref: str | Path) -> list[_Profile]:
    """The profile and every profile it extends, base first."""
    chain: list[_Profile] = []
    path = find_profile(ref)
    while True:
        if any(profile.path == path for profile in chain):
            cycle = " -> ".join([*(p.label for p in chain), _display(path)])
            raise ConfigError(
                f"extends cycle: {cycle}",
                key="extends",
                file=chain[-1].label,
                line=chain[-1].lines.get(("extends",)),
            )
        profile = _read_profile(path)
        chain.append(profile)
        if profile.extends is None:
            return chain[::-1]
        try:
            path = find_profile(profile.extends, near=profile.path.parent)
        except ConfigError as exc:
            raise ConfigError(
                exc.message, key="extends", file=profile.label, line=profile.lines.get(("extends",))
            ) from None


# ---- merging layers with their sources


def _get(container: Any, segment: str) -> Any:
    if isinstance(container, dict):
        return container.get(segment)
    if isinstance(container, list) and segment.isdigit() and int(segment) < len(container):
        return container[int(segment)]
    return None


def _leaf_paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Dotted leaves: nested mappings are walked, lists and empty mappings are leaves."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaf_paths(child, (*prefix, str(key)))
    else:
        yield prefix


def _flat(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in _leaf_paths(value):
        node: Any = value
        for segment in path:
            node = node[segment]
        out[".".join(path)] = node
    return out


@dataclass
class _Layers:
    data: dict[str, Any]
    sources: dict[Path_, str] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=lambda: {DEFAULT_SOURCE: 0})
    lines: dict[str, dict[Path_, int]] = field(default_factory=dict)

    def rank(self, source: str) -> int:
        return self.ranks.get(source, 0)

    def put(self, path: Path_, value: Any, source: str) -> None:
        """Set one key (a leaf or a whole subtree), replacing what lower layers set."""
        self.ranks.setdefault(source, len(self.ranks))
        container: Any = self.data
        for depth, segment in enumerate(path[:-1]):
            nxt = _get(container, segment)
            if not isinstance(nxt, dict | list):
                if not isinstance(container, dict):
                    raise ConfigError(
                        f"{'.'.join(path[: depth + 1])}: no such list item",
                        key=".".join(path),
                        file=_file_of(source),
                        source=source,
                    )
                nxt = container[segment] = {}
            container = nxt
        last = path[-1]
        mapping_entry = annotation_kind(annotation_at(path[:-1]))[0] == "mapping"
        if isinstance(container, list):
            if not (last.isdigit() and int(last) < len(container)):
                raise ConfigError(
                    f"{'.'.join(path)}: no such list item",
                    key=".".join(path),
                    file=_file_of(source),
                    source=source,
                )
            container[int(last)] = value
        elif value is None and mapping_entry:
            container.pop(last, None)  # null removes an entry a lower layer added
        else:
            container[last] = value
        self.sources = {p: s for p, s in self.sources.items() if p[: len(path)] != path}
        # A removal is remembered too: an emptied mapping then names who emptied it.
        self.sources.update((leaf, source) for leaf in _leaf_paths(value, path))

    def merge(self, mapping: dict[Any, Any], source: str, prefix: Path_ = ()) -> None:
        for key, value in mapping.items():
            path = (*prefix, str(key))
            existing = _get(_node_at(self.data, prefix), str(key))
            if isinstance(value, dict) and isinstance(existing, dict):
                self.ranks.setdefault(source, len(self.ranks))
                self.merge(value, source, path)
            else:
                self.put(path, value, source)

    def source_of(self, path: Path_) -> str:
        if path in self.sources:
            return self.sources[path]
        for size in range(len(path) - 1, 0, -1):
            if path[:size] in self.sources:
                return self.sources[path[:size]]
        below = [s for p, s in self.sources.items() if p[: len(path)] == path]
        return max(below, key=self.rank) if below else DEFAULT_SOURCE

    def nearest(self, path: Path_) -> str:
        """For a key nobody set (a missing field): the layer that set its closest
        relatives, which is the layer that created the entry around it."""
        for size in range(len(path), 0, -1):
            source = self.source_of(path[:size])
            if source != DEFAULT_SOURCE:
                return source
        return DEFAULT_SOURCE

    def line_of(self, path: Path_, source: str) -> int | None:
        lines = self.lines.get(source, {})
        for size in range(len(path), 0, -1):
            if path[:size] in lines:
                return lines[path[:size]]
        return None


def _node_at(data: Any, path: Path_) -> Any:
    for segment in path:
        data = _get(data, segment)
    return data


def _file_of(source: str) -> str:
    if source.startswith("profile:"):
        return source.removeprefix("profile:")
    if source.startswith("env:"):
        return "env"
    if source.startswith("cli:"):
        return "cli"
    return "defaults"


# ---- env and --set


def _env_value(text: str) -> Any:
    # Strings go to pydantic as they are (it coerces numbers and booleans); JSON only for
    # lists and mappings; an empty value unsets an optional setting.
    if text == "":
        return None
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _env_path(segments: Sequence[str], data: Any) -> Path_:
    # Env names are upper case; field names are lower case, mapping keys keep their case.
    path: list[str] = []
    annotation: Any = Settings
    for segment in segments:
        name = segment.lower()
        if (
            annotation is not None
            and annotation_kind(annotation)[0] == "mapping"
            and isinstance(data, dict)
        ):
            name = next((key for key in data if key.lower() == segment.lower()), segment)
        path.append(name)
        annotation = child_annotation(annotation, name)
        data = _get(data, name)
    return tuple(path)


def _top_level_leaves() -> frozenset[str]:
    return frozenset(
        name
        for name, spec in Settings.model_fields.items()
        if annotation_kind(spec.annotation)[0] == "leaf"
    )


def _env_entries(env: Mapping[str, str], data: dict[str, Any]) -> list[tuple[str, Path_, Any]]:
    """(variable, key, value) for every env variable that is configuration, aliases
    first so that the nested spelling wins. Other MMBOT_ names (MMBOT_API_KEY,
    MMBOT_FREEZE_UTC, ...) belong to their own readers and are skipped."""
    entries = [
        (name, path, _env_value(env[name]))
        for name, path in sorted(ENV_ALIASES.items())
        if name in env
    ]
    top = _top_level_leaves()
    for name in sorted(env):
        rest = name.removeprefix(ENV_PREFIX)
        if not name.startswith(ENV_PREFIX) or name in ENV_ALIASES:
            continue
        if "__" in rest or rest.lower() in top:
            entries.append((name, _env_path(rest.split("__"), data), _env_value(env[name])))
    return entries


def _mapping_key_end(segments: Sequence[str], start: int, data: Any, value_type: Any) -> int:
    """Where a mapping key ends in a dotted path: keys may hold dots themselves
    ('tuning.bounds.strategy.min_half_spread_bps.max')."""
    if isinstance(data, dict):
        for end in range(len(segments), start, -1):
            if ".".join(segments[start:end]) in data:
                return end
    for end in range(start + 1, len(segments)):
        if _is_path_in(value_type, segments[end:]):
            return end
    return len(segments)


def _split_key(dotted: str, data: dict[str, Any]) -> Path_:
    segments = dotted.split(".")
    path: list[str] = []
    annotation: Any = Settings
    node: Any = data
    start = 0
    while start < len(segments):
        kind, inner = annotation_kind(annotation) if annotation is not None else ("leaf", None)
        end = _mapping_key_end(segments, start, node, inner) if kind == "mapping" else start + 1
        name = ".".join(segments[start:end])
        path.append(name)
        annotation = child_annotation(annotation, name)
        node = _get(node, name)
        start = end
    return tuple(path)


def _parse_override(text: str, data: dict[str, Any]) -> tuple[Path_, Any, str]:
    dotted, sep, raw = text.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted:
        raise ConfigError(
            f"--set {text!r}: expected key=value, e.g. risk.max_inventory_usd=5000", file="cli"
        )
    path = _split_key(dotted, data)
    shown = SECRET_MASK if _is_secret_path(path) else mask_url_passwords(raw)
    label = f"cli:--set {dotted}={shown}"
    try:
        # bandit's B506 sees yaml.load; _ProfileLoader is a SafeLoader subclass
        value = yaml.load(raw, Loader=_ProfileLoader)  # nosec B506
    except yaml.YAMLError as exc:
        error = _yaml_error(exc, "cli", f"value for {dotted}")
        raise ConfigError(error.message, key=dotted, file="cli", source=label) from None
    return path, value, label


# ---- validation errors back to keys and files


def _one_error(error: Mapping[str, Any], layers: _Layers) -> ConfigError:
    loc = tuple(str(part) for part in error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, InconsistentSettings):
        path = (*loc, *cause.path)
        involved = [path, *((*loc, *other) for other in cause.related)]
        # Blame the file that set the latest of the keys in the rule: that is the edit
        # that broke it (max keeps the first, the rule's own key, on ties).
        source = layers.source_of(max(involved, key=lambda p: layers.rank(layers.source_of(p))))
        # The rule's message speaks of fields of one model; the key says which one.
        key = ".".join(path)
        message = str(cause) if key in str(cause) else f"{key}: {cause}"
        hint = cause.suggestion
        suggestion = ".".join((*loc, *hint)) if isinstance(hint, tuple) else hint
        return _error_at(path, message, source, layers, suggestion)
    source = layers.nearest(loc) if error["type"] == "missing" else layers.source_of(loc)
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return _error_at(loc, f"unknown key {key!r}", source, layers, _suggest(loc))
    message = f"{key}: {error['msg']}"
    shown = error.get("input")
    if isinstance(shown, str):
        shown = mask_url_passwords(shown)
    if not _is_secret_path(loc) and isinstance(shown, str | int | float | bool | Decimal):
        message += f" (got {shown!r})"
    return _error_at(loc, message, source, layers)


def _error_at(
    path: Path_, message: str, source: str, layers: _Layers, suggestion: str | None = None
) -> ConfigError:
    return ConfigError(
        message,
        key=".".join(path),
        file=_file_of(source),
        line=layers.line_of(path, source),
        suggestion=suggestion,
        source=source,
    )


def _validate(layers: _Layers) -> Settings:
    try:
        return Settings.model_validate(layers.data)
    except ValidationError as exc:
        errors = [_one_error(error, layers) for error in exc.errors()]
        first = errors[0]
        first.others = tuple(errors[1:])
        raise first from None


# ---- public API


def resolve(
    profile: str | Path | None = "base",
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Resolved:
    """Settings from defaults, a profile chain, env (`os.environ` when None) and
    `--set` overrides, with the source of every leaf. Raises ConfigError."""
    env = os.environ if env is None else env
    if isinstance(overrides, str):
        overrides = (overrides,)
    layers = _Layers(Settings().model_dump())
    chain = _profile_chain(profile) if profile is not None else []
    for item in chain:
        source = f"profile:{item.label}"
        layers.lines[source] = item.lines
        layers.ranks.setdefault(source, len(layers.ranks))
        layers.merge(item.data, source)
    for name, path, value in _env_entries(env, layers.data):
        layers.put(path, value, f"env:{name}")
    for text in overrides:
        path, value, source = _parse_override(text, layers.data)
        if isinstance(value, dict) and isinstance(_node_at(layers.data, path), dict):
            # a mapping value merges key by key, as a profile's does: `--set
            # gates.kpi={fills: ...}` changes one bound and keeps the others
            layers.ranks.setdefault(source, len(layers.ranks))
            layers.merge(value, source, path)
        else:
            layers.put(path, value, source)
    settings = _validate(layers)
    sources = {
        ".".join(path): layers.source_of(path)
        for path in _leaf_paths(settings.model_dump(mode="json"))
    }
    return Resolved(settings, sources, tuple(item.label for item in chain))


def load_settings(
    profile: str | Path | None = "base",
    *,
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The settings of a run; see `resolve` for the layers."""
    return resolve(profile, overrides, env).settings


def diff(a: Resolved, b: Resolved) -> list[Change]:
    """Every leaf whose value differs, in schema order; secrets compare by value but
    show masked. A key on one side only has value None and source 'absent'."""
    old, new = _flat(a.settings.model_dump()), _flat(b.settings.model_dump())
    old_shown, new_shown = redacted_leaves(a.settings), redacted_leaves(b.settings)
    changes = []
    for key in dict.fromkeys([*old, *new]):
        if key in old and key in new and old[key] == new[key]:
            continue
        changes.append(
            Change(
                key,
                old_shown.get(key),
                new_shown.get(key),
                a.sources.get(key, "absent"),
                b.sources.get(key, "absent"),
            )
        )
    return changes


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@/\s]+)@")


def mask_url_passwords(text: str) -> str:
    """Every URL password in text (user, colon, password, at-sign) replaced by the mask."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}:{SECRET_MASK}@", text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_url_passwords(value)
    if isinstance(value, dict):
        return {key: _mask(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_mask(child) for child in value]
    return value


def redacted_dict(settings: Settings) -> dict[str, Any]:
    """JSON-safe dump for manifests and `config show`: SecretStr values and passwords
    inside URLs are replaced by the mask."""
    masked: dict[str, Any] = _mask(settings.model_dump(mode="json"))
    return masked


def redacted_leaves(settings: Settings) -> dict[str, Any]:
    """`redacted_dict` flattened to dotted keys (the keys of `Resolved.sources`)."""
    return _flat(redacted_dict(settings))

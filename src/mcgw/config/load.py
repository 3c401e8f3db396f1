"""YAML and JSON files → :class:`~mcgw.config.resources.Resources`, strictly.

``load(paths)`` reads every ``*.yaml``, ``*.yml`` and ``*.json`` below the given paths
(folders recursively, in sorted order, hidden entries skipped), validates each document
against its model and groups the objects by cluster:

* With one ``Fleet`` among the documents, each of its clusters that names a
  ``manifests`` folder (relative to the Fleet's file) owns the documents in that folder;
  every other document belongs to the fleet's config cluster.
* Without a Fleet, an implicit one holds a single cluster ``default`` (region ``local``,
  zone ``local-a``) that owns everything.

Nothing is half-loaded: every problem in every file is collected and raised together as
one :class:`ConfigError`, each naming the file, the document (1-based), the object, the
field path as spelled in YAML (``spec.rules[0].backendRefs[0].port``) and a fix. Kinds
mcgw does not read (ConfigMap, CRDs, ...) are skipped with a warning instead.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from mcgw.config import core, gatewayapi, mcs, policy, problem, resources
from mcgw.config.base import ObjectMeta, Resource
from mcgw.config.fleet import FLEET_API_VERSION, Fleet, FleetCluster, FleetSpec
from mcgw.errors import McgwError

SUFFIXES = frozenset({".yaml", ".yml", ".json"})

IMPLICIT_CLUSTER = "default"
"""The one cluster of the implicit Fleet used when no Fleet is given."""


# --- public results -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in the input, rendered by ``str()`` as a single stable line."""

    file: str
    message: str
    fix: str
    document: int | None = None
    """1-based index of the YAML document in the file; None: the file as a whole."""
    item: int | None = None
    """0-based index in the ``items`` of a ``kind: List`` document."""
    obj: str | None = None
    """``<Kind> <namespace>/<name>`` when known."""
    path: str = ""
    """Field path in the YAML's spelling, e.g. ``spec.rules[0].matches[0].path.type``."""

    @property
    def where(self) -> str:
        where = self.file
        if self.document is not None:
            where += f": document {self.document}"
        if self.item is not None:
            where += f", items[{self.item}]"
        if self.obj:
            where += f" ({self.obj})"
        return where

    def __str__(self) -> str:
        path = f"{self.path}: " if self.path else ""
        message = self.message.rstrip(".")
        return f"{self.where}: {path}{message}. Fix: {self.fix}"


class ConfigError(McgwError):
    """The files are invalid; ``issues`` holds every problem found, in reading order."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


@dataclass(frozen=True, slots=True)
class Loaded:
    resources: resources.Resources
    warnings: tuple[str, ...] = ()
    """Things skipped on purpose (unknown kinds), one line each, in reading order."""


# --- the kinds mcgw reads -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    model: type[Resource]
    bucket: str
    """The ClusterResources field that collects objects of this kind."""
    namespaced: bool = True


KINDS: dict[tuple[str, str], _Kind] = {
    ("", "Namespace"): _Kind(core.Namespace, "namespaces", namespaced=False),
    ("", "Service"): _Kind(core.Service, "services"),
    ("apps", "Deployment"): _Kind(core.Deployment, "deployments"),
    ("discovery.k8s.io", "EndpointSlice"): _Kind(core.EndpointSlice, "endpoint_slices"),
    ("", "Secret"): _Kind(core.Secret, "secrets"),
    (mcs.GKE_GROUP, "ServiceExport"): _Kind(mcs.ServiceExport, "service_exports"),
    (mcs.UPSTREAM_GROUP, "ServiceExport"): _Kind(mcs.ServiceExport, "service_exports"),
    (mcs.GKE_GROUP, "ServiceImport"): _Kind(mcs.ServiceImport, "service_imports"),
    (mcs.UPSTREAM_GROUP, "ServiceImport"): _Kind(mcs.ServiceImport, "service_imports"),
    (gatewayapi.GROUP, "GatewayClass"): _Kind(
        gatewayapi.GatewayClass, "gateway_classes", namespaced=False
    ),
    (gatewayapi.GROUP, "Gateway"): _Kind(gatewayapi.Gateway, "gateways"),
    (gatewayapi.GROUP, "HTTPRoute"): _Kind(gatewayapi.HTTPRoute, "http_routes"),
    (gatewayapi.GROUP, "ReferenceGrant"): _Kind(gatewayapi.ReferenceGrant, "reference_grants"),
    ("networking.gke.io", "HealthCheckPolicy"): _Kind(
        policy.HealthCheckPolicy, "health_check_policies"
    ),
    ("networking.gke.io", "GCPBackendPolicy"): _Kind(policy.GCPBackendPolicy, "backend_policies"),
    ("networking.gke.io", "GCPTrafficDistributionPolicy"): _Kind(
        policy.GCPTrafficDistributionPolicy, "traffic_policies"
    ),
}
"""(API group, kind) → model. The version is checked by the model's ``apiVersion``."""

_FLEET_KEY = ("mcgw.dev", "Fleet")
_KNOWN_KIND_NAMES = sorted({kind for _, kind in KINDS} | {"Fleet"})


def implicit_fleet() -> Fleet:
    """The Fleet assumed when none is given: one local cluster holding everything."""
    return Fleet(
        api_version=FLEET_API_VERSION,
        kind="Fleet",
        metadata=ObjectMeta(name="default"),
        spec=FleetSpec(
            clusters=[FleetCluster(name=IMPLICIT_CLUSTER, region="local", zone="local-a")]
        ),
    )


# --- public entry point ---------------------------------------------------------------


def load(paths: Sequence[Path]) -> Loaded:
    """Read, validate and group by cluster every manifest below ``paths``.

    Args:
        paths: files and folders; folders are read recursively.

    Returns:
        The resources, and warnings about documents skipped on purpose.

    Raises:
        ConfigError: with every problem found, if there is any; nothing is returned then.
    """
    reader = _Reader()
    for path in paths:
        reader.add_path(Path(path))
    return reader.finish()


# --- YAML that behaves like the API server's -------------------------------------------

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe YAML without timestamps (metadata keeps them as text) and no duplicate keys."""

    yaml_implicit_resolvers: typing.ClassVar[dict[Any, Any]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # keys merged in with `<<` may be overridden on purpose
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return typing.cast(dict[Any, Any], super().construct_mapping(node, deep=deep))


# --- reading --------------------------------------------------------------------------


@dataclass(slots=True)
class _Source:
    display: str
    """How messages name the file: as reached from the paths given."""
    real: Path


@dataclass(slots=True)
class _Doc:
    source: _Source
    document: int
    item: int | None
    data: object

    @property
    def place(self) -> str:
        """``file: document N`` (and the List item), to point at another document."""
        item = f", items[{self.item}]" if self.item is not None else ""
        return f"{self.source.display}: document {self.document}{item}"

    def issue(self, message: str, fix: str, *, path: str = "", obj: str | None = None) -> Issue:
        return Issue(
            file=self.source.display,
            document=self.document,
            item=self.item,
            obj=obj if obj is not None else _label(self.data),
            path=path,
            message=message,
            fix=fix,
        )


@dataclass(slots=True)
class _Parsed:
    obj: Resource
    doc: _Doc
    kind: _Kind


class _Reader:
    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.order: dict[str, int] = {}
        """Reading order of files, by display name: issues are reported in it."""
        self.warnings: list[str] = []
        self.sources: dict[Path, _Source] = {}
        self.docs: list[_Doc] = []

    # files ----------------------------------------------------------------------------

    def add_path(self, path: Path) -> None:
        if path.is_dir():
            for source in _walk(path):
                self._add_source(source)
        elif path.is_file():
            self._add_source(_Source(path.as_posix(), path.resolve()))
        else:
            self.order.setdefault(path.as_posix(), len(self.order))
            self.issues.append(
                Issue(
                    file=path.as_posix(),
                    message="no such file or folder",
                    fix="check the path given with -f",
                )
            )

    def _add_source(self, source: _Source) -> None:
        if source.real in self.sources:
            return
        self.sources[source.real] = source
        self.order.setdefault(source.display, len(self.order))
        self.docs.extend(self._parse(source))

    def _parse(self, source: _Source) -> list[_Doc]:
        try:
            text = source.real.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.issues.append(
                Issue(source.display, f"cannot read the file: {exc}", "check that it is UTF-8 text")
            )
            return []
        try:
            datas = _documents(text, json_file=source.real.suffix == ".json")
        except _SyntaxProblem as exc:
            self.issues.append(Issue(source.display, exc.message, exc.fix))
            return []
        docs: list[_Doc] = []
        for index, data in enumerate(datas, start=1):
            if data is None:
                continue  # an empty document, e.g. after a trailing `---`
            items = data.get("items") if isinstance(data, dict) else None
            if isinstance(data, dict) and _is_list(data) and isinstance(items, list):
                docs.extend(_Doc(source, index, i, item) for i, item in enumerate(items))
            else:
                docs.append(_Doc(source, index, None, data))
        return docs

    # fleet and clusters ----------------------------------------------------------------

    def _fleet(self) -> tuple[Fleet, dict[str, set[Path]], _Doc | None]:
        """The Fleet (given or implicit) and, per cluster, the files its folder holds."""
        fleets = [d for d in self.docs if _key(d.data) == _FLEET_KEY]
        if not fleets:
            return implicit_fleet(), {}, None
        first = fleets[0]
        for extra in fleets[1:]:
            self.issues.append(
                extra.issue(
                    f"a second Fleet; {first.place} already defines one",
                    "keep a single Fleet: one gateway serves one fleet of clusters",
                )
            )
        if len(fleets) > 1:
            return implicit_fleet(), {}, first
        fleet = self._validate(first, Fleet)
        if fleet is None:
            return implicit_fleet(), {}, first
        assert isinstance(fleet, Fleet)
        members: dict[str, set[Path]] = {}
        base_display = Path(first.source.display).parent
        base_real = first.source.real.parent
        for index, cluster in enumerate(fleet.spec.clusters):
            if cluster.manifests is None:
                continue
            folder = base_real / cluster.manifests
            shown = (base_display / cluster.manifests).as_posix()
            if not folder.is_dir():
                self.issues.append(
                    first.issue(
                        f"folder {shown} does not exist",
                        "create it, or correct the path (it is relative to the Fleet's file)",
                        path=f"spec.clusters[{index}].manifests",
                    )
                )
                continue
            files = set()
            for source in _walk(folder, shown):
                self._add_source(source)
                files.add(source.real)
            members[cluster.name] = files
        return fleet, members, first

    # objects ---------------------------------------------------------------------------

    def _validate(self, doc: _Doc, model: type[Resource]) -> Resource | None:
        try:
            return model.model_validate(doc.data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            # Pydantic reports unknown fields last; users read a file top to bottom.
            errors.sort(key=lambda e: _position(e["loc"], doc.data))
            seen: set[str] = set()
            for error in errors:
                path = _render_loc(error["loc"], doc.data)
                at = str((error.get("ctx") or {}).get("at", ""))
                if at:
                    path = f"{path}{'' if at.startswith('[') or not path else '.'}{at}"
                if path in seen:
                    continue  # a union reports once per member; the first says enough
                seen.add(path)
                message, fix = _explain(error, model)
                self.issues.append(doc.issue(message, fix, path=path))
            return None

    def _object(self, doc: _Doc) -> _Parsed | None:
        data = doc.data
        if not isinstance(data, dict):
            self.issues.append(
                doc.issue(
                    f"expected a Kubernetes object, got {_type_name(data)}",
                    "write a mapping with apiVersion, kind, metadata and spec",
                    obj="",
                )
            )
            return None
        for field, example in (
            ("apiVersion", "apiVersion: gateway.networking.k8s.io/v1"),
            ("kind", "kind: HTTPRoute"),
        ):
            if not isinstance(data.get(field), str):
                if field in data:
                    message, fix = (
                        f"should be a string (got {_got(data[field])})",
                        f"write {example}",
                    )
                else:
                    message, fix = "required field is missing", f"add it, e.g. {example}"
                self.issues.append(doc.issue(message, fix, path=field))
                return None
        key = _key(data)
        kind = KINDS.get(key) if key is not None else None
        if kind is None:
            self.warnings.append(_skipped(doc))
            return None
        obj = self._validate(doc, kind.model)
        return None if obj is None else _Parsed(obj, doc, kind)

    def finish(self) -> Loaded:
        fleet, members, fleet_doc = self._fleet()
        config_cluster = fleet.spec.config_cluster_name
        buckets: dict[str, dict[str, list[Resource]]] = {c.name: {} for c in fleet.spec.clusters}
        first_seen: dict[tuple[str, str, str, str], _Doc] = {}
        for doc in self.docs:
            if doc is fleet_doc or _key(doc.data) == _FLEET_KEY:
                continue
            parsed = self._object(doc)
            if parsed is None:
                continue
            owners = [name for name, files in members.items() if doc.source.real in files]
            for cluster in owners or [config_cluster]:
                meta = parsed.obj.metadata
                namespace = meta.namespace if parsed.kind.namespaced else ""
                dup_key = (cluster, parsed.kind.bucket, namespace, meta.name)
                if dup_key in first_seen:
                    self.issues.append(
                        doc.issue(
                            f"{first_seen[dup_key].place} already defines this "
                            f"{parsed.obj.kind} in cluster {cluster}",
                            "remove one of the two, or give this one another name",
                        )
                    )
                    continue
                first_seen[dup_key] = doc
                buckets[cluster].setdefault(parsed.kind.bucket, []).append(parsed.obj)
        if self.issues:
            # Sorting is stable: within a document, issues keep the order of its fields.
            self.issues.sort(
                key=lambda i: (self.order.get(i.file, 0), i.document or 0, i.item or 0)
            )
            raise ConfigError(self.issues)
        clusters = tuple(
            _cluster(c.name, c.region, c.zone, buckets[c.name]) for c in fleet.spec.clusters
        )
        return Loaded(resources.Resources(fleet=fleet, clusters=clusters), tuple(self.warnings))


def _cluster(
    name: str, region: str, zone: str, bucket: dict[str, list[Resource]]
) -> resources.ClusterResources:
    def order(obj: Resource) -> tuple[str, str]:
        return (obj.metadata.namespace, obj.metadata.name)

    # Every bucket name is a ClusterResources field holding exactly that kind (see KINDS).
    fields: dict[str, Any] = {attr: tuple(sorted(objs, key=order)) for attr, objs in bucket.items()}
    return resources.ClusterResources(name=name, region=region, zone=zone, **fields)


def _walk(folder: Path, shown: str | None = None) -> Iterator[_Source]:
    """Manifest files below ``folder`` in sorted order, skipping hidden files and folders."""
    display = Path(shown) if shown is not None else folder
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix in SUFFIXES and path.is_file():
            found.append(relative)
    for relative in sorted(found, key=lambda p: p.as_posix()):
        yield _Source((display / relative).as_posix(), (folder / relative).resolve())


class _SyntaxProblem(Exception):
    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


def _documents(text: str, *, json_file: bool) -> list[object]:
    if json_file:
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise _SyntaxProblem(
                f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                "correct the JSON near that position",
            ) from exc
    try:
        return list(yaml.load_all(text, Loader=_StrictLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "invalid YAML"
        duplicate = what.startswith("duplicate key")
        raise _SyntaxProblem(
            f"YAML {'error' if duplicate else 'syntax error'}{at}: {what}",
            "remove one of the two entries"
            if duplicate
            else "check the indentation, colons and quotes on that line and the one before",
        ) from exc
    except yaml.YAMLError as exc:
        raise _SyntaxProblem(f"YAML error: {exc}", "correct the YAML") from exc


def _is_list(data: dict[Any, Any]) -> bool:
    kind = data.get("kind")
    return isinstance(kind, str) and (kind == "List" or kind.endswith("List"))


def _key(data: object) -> tuple[str, str] | None:
    if not isinstance(data, dict):
        return None
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    group = api_version.rpartition("/")[0]
    return (group, kind)


def _label(data: object) -> str | None:
    """``HTTPRoute store/public-store-route``, as far as the document says."""
    if not isinstance(data, dict):
        return None
    kind = data.get("kind") if isinstance(data.get("kind"), str) else None
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or kind is None:
        return kind or (name if isinstance(name, str) else None)
    assert isinstance(meta, dict)
    namespace = meta.get("namespace")
    key = _key(data)
    known = KINDS.get(key) if key is not None else None
    if known is not None and known.namespaced:
        # What the API server would do: a namespaced object without one is in "default".
        name = f"{namespace if isinstance(namespace, str) else 'default'}/{name}"
    elif known is None and key != _FLEET_KEY and isinstance(namespace, str):
        name = f"{namespace}/{name}"  # unknown kind: its scope is unknown, say what is written
    return f"{kind} {name}"


def _skipped(doc: _Doc) -> str:
    assert isinstance(doc.data, dict)
    kind, api_version = doc.data["kind"], doc.data["apiVersion"]
    text = f"{doc.issue('', '').where}: skipped: mcgw does not read {kind} ({api_version})"
    if kind not in _KNOWN_KIND_NAMES:
        close = difflib.get_close_matches(kind, _KNOWN_KIND_NAMES, n=1, cutoff=0.8)
        if close:
            text += f"; did you mean {close[0]}?"
    else:
        groups = sorted(g for g, k in KINDS if k == kind) or ["mcgw.dev"]
        text += f"; mcgw reads {kind} of API group {' or '.join(groups)}"
    return text


def _type_name(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


# --- turning pydantic errors into issues ------------------------------------------------


def _position(loc: tuple[int | str, ...], data: object) -> tuple[int, ...]:
    """Where the error is in the document, as key and item indexes, for sorting."""
    position: list[int] = []
    node = data
    for step in loc:
        if isinstance(node, dict):
            keys = list(node)
            position.append(keys.index(step) if step in node else len(keys))
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            position.append(step)
            node = node[step]
    return tuple(position)


def _render_loc(loc: tuple[int | str, ...], data: object) -> str:
    """The error location as a YAML path; steps that are not in the input are union tags."""
    parts: list[str] = []
    node = data
    for position, step in enumerate(loc):
        if isinstance(node, dict) and step in node:
            parts.append(_key_text(str(step), first=not parts))
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            parts.append(f"[{step}]")
            node = node[step]
        elif position == len(loc) - 1 and isinstance(step, str) and isinstance(node, dict):
            parts.append(_key_text(step, first=not parts))  # a missing field
    return "".join(parts)


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _key_text(key: str, *, first: bool) -> str:
    if _PLAIN_KEY.match(key):
        return key if first else f".{key}"
    return f"[{json.dumps(key)}]"  # label keys such as app.kubernetes.io/name


def _got(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    if isinstance(value, int | float):
        return str(value)
    return _type_name(value)


_TYPE_FIXES = {
    "int_type": "write a whole number, without quotes",
    "int_parsing": "write a whole number, without quotes",
    "int_from_float": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "string_type": "write text; quote it if YAML would read it as a number, boolean or null",
    "list_type": "write a list: one '- ' entry per line, or [a, b]",
    "dict_type": "write a mapping of key: value lines",
    "model_type": "write a mapping of key: value lines",
    "model_attributes_type": "write a mapping of key: value lines",
}

_PATTERNS: dict[str, tuple[str, str]] = {
    gatewayapi.HOSTNAME_PATTERN: (
        "a valid hostname",
        "use lowercase DNS labels, optionally after '*.', e.g. store.example.com or "
        "*.example.com (no scheme, no port)",
    ),
    gatewayapi.PRECISE_HOSTNAME_PATTERN: (
        "a valid name",
        "use lowercase letters, digits, '-' and '.', e.g. store.example.com",
    ),
    gatewayapi.GROUP_PATTERN: (
        "a valid API group",
        'use a group such as gateway.networking.k8s.io, or "" for the core group',
    ),
    gatewayapi.KIND_PATTERN: ("a valid kind", "use a kind such as Service or ServiceImport"),
    gatewayapi.NAMESPACE_PATTERN: (
        "a valid name",
        "use lowercase letters, digits and '-', starting and ending with a letter or digit",
    ),
    gatewayapi.HEADER_NAME_PATTERN: (
        "a valid header name",
        "use letters, digits and !#$%&'*+-.^_`|~ only (no ':' or spaces)",
    ),
    gatewayapi.DURATION_PATTERN: ("a valid duration", "write e.g. 10s, 500ms or 1h30m"),
    gatewayapi.CONTROLLER_NAME_PATTERN: (
        "a valid controller name",
        "use a domain-prefixed path such as example.com/gateway-controller",
    ),
    gatewayapi.PROTOCOL_PATTERN: (
        "a valid protocol",
        "use HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed one such as example.com/proto",
    ),
    gatewayapi.ADDRESS_TYPE_PATTERN: (
        "a valid address type",
        "use IPAddress, Hostname or a domain-prefixed type",
    ),
}

_SHOW_INPUT = frozenset(
    {
        *_TYPE_FIXES,
        "literal_error",
        "enum",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "string_too_short",
        "string_too_long",
    }
)


def _explain(error: ErrorDetails, model: type[BaseModel]) -> tuple[str, str]:
    """(message, fix) for one pydantic error."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error["input"]
    message = error["msg"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"should be a mapping, got {_type_name(value)}"
    if kind in _SHOW_INPUT and not isinstance(value, dict | list) and ", got " not in message:
        message = f"{message} (got {_got(value)})"
    if kind == problem.ERROR_TYPE:
        return error["msg"], str(ctx.get("fix", "correct the value"))
    if kind == "value_error":
        return message.removeprefix("Value error, "), "correct the value"
    if kind == "missing":
        return "required field is missing", "add it"
    if kind == "extra_forbidden":
        return "unknown field", _unknown_field_fix(error["loc"], model)
    if kind in _TYPE_FIXES:
        return message, _TYPE_FIXES[kind]
    if kind in ("literal_error", "enum"):
        return message, _choice_fix(str(ctx.get("expected", "")), value)
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        if pattern in _PATTERNS:
            what, fix = _PATTERNS[pattern]
            return f"{_got(value)} is not {what}", fix
        return f"{message} (got {_got(value)})", f"make it match the pattern {pattern}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return message, _range_fix(error["loc"], model, ctx)
    if kind == "string_too_short":
        least = int(ctx.get("min_length", 1))
        return message, "it must not be empty" if least <= 1 else f"use at least {least} characters"
    if kind == "string_too_long":
        return message, f"use at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        least = int(ctx.get("min_length", 1))
        return message, f"give at least {least} {'entry' if least == 1 else 'entries'}"
    if kind == "too_long":
        return message, f"give at most {ctx.get('max_length')} entries"
    return message, "check the value against the API reference"


def _unknown_field_fix(loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    name = str(loc[-1])
    parent = _model_at(model, loc[:-1])
    if parent is None:
        return "remove it"
    known = sorted(field.alias or key for key, field in parent.model_fields.items())
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"remove it, or did you mean {close[0]!r}?"
    return f"remove it (fields allowed here: {', '.join(known)})"


def _choice_fix(expected: str, value: object) -> str:
    choices = re.findall(r"'([^']*)'", expected)
    if isinstance(value, str) and choices:
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
        if not close:
            lowered = [c for c in choices if c.lower() == value.lower()]
            close = lowered[:1]
        if close:
            return f"did you mean {close[0]!r}? Allowed: {expected}"
    return f"use one of {expected}"


def _range_fix(loc: tuple[int | str, ...], model: type[BaseModel], ctx: dict[str, Any]) -> str:
    low, high = _bounds(_annotation_at(model, loc))
    low = low if low is not None else ctx.get("ge")
    high = high if high is not None else ctx.get("le")
    if low is not None and high is not None:
        return f"use a number from {low} to {high}"
    if low is not None:
        return f"use a number of at least {low}"
    if high is not None:
        return f"use a number of at most {high}"
    return "use a number in the allowed range"


# Walking a model's type along an error location, to find the model or field it names.

_Annotation = Any


def _strip(annotation: _Annotation) -> tuple[_Annotation, list[object]]:
    """Remove Annotated and Optional wrappers; return the core type and their metadata."""
    metadata: list[object] = []
    while True:
        origin: object = typing.get_origin(annotation)
        if origin is typing.Annotated:
            args = typing.get_args(annotation)
            metadata.extend(args[1:])
            annotation = args[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation, metadata
            annotation = members[0]
        else:
            return annotation, metadata


def _step(annotation: _Annotation, step: int | str) -> tuple[_Annotation, list[object]] | None:
    core_type, _ = _strip(annotation)
    origin: object = typing.get_origin(core_type)
    if isinstance(step, int):
        if origin in (list, tuple, set, frozenset):
            return typing.get_args(core_type)[0], []
        return None
    if isinstance(core_type, type) and issubclass(core_type, BaseModel):
        for key, field in core_type.model_fields.items():
            if step in (key, field.alias):
                return field.annotation, list(field.metadata)
        return None
    if origin is dict:
        return typing.get_args(core_type)[1], []
    return annotation, []  # a union tag: stay on the same type


def _walk_type(
    model: type[BaseModel], loc: Iterable[int | str]
) -> tuple[_Annotation, list[object]]:
    annotation: _Annotation = model
    metadata: list[object] = []
    for step in loc:
        found = _step(annotation, step)
        if found is None:
            return None, []
        annotation, metadata = found
    return annotation, metadata


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    annotation, _ = _walk_type(model, loc)
    core_type, _ = _strip(annotation)
    if isinstance(core_type, type) and issubclass(core_type, BaseModel):
        return core_type
    return None


def _annotation_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[object]:
    annotation, metadata = _walk_type(model, loc)
    _, inner = _strip(annotation)
    return [*metadata, *inner]


def _bounds(metadata: list[object]) -> tuple[object | None, object | None]:
    low: object | None = None
    high: object | None = None
    pending = list(metadata)
    while pending:
        item = pending.pop()
        if isinstance(item, FieldInfo):
            pending.extend(item.metadata)
        elif isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
    return low, high

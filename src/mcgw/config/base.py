"""Common ground for every input model: strict, frozen, camelCase like Kubernetes.

Models accept exactly the fields they declare (``extra="forbid"``): a misspelt key is
an error with its path, never silently ignored. Field names are snake_case in Python
and camelCase in YAML, as Kubernetes spells them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """Base of every config model."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        strict=False,
    )


class ObjectMeta(Model):
    """The ``metadata`` fields mcgw reads; the rest Kubernetes writes are accepted."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    """RFC 3339; breaks precedence ties between HTTPRoutes (oldest wins)."""
    managed_fields: list[dict[str, object]] | None = None
    owner_references: list[dict[str, object]] | None = None
    finalizers: list[str] | None = None
    generate_name: str | None = None
    self_link: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None


class Resource(Model):
    """A Kubernetes object: apiVersion, kind, metadata."""

    api_version: str
    kind: str
    metadata: ObjectMeta
    status: object | None = None
    """Whatever a controller wrote (``kubectl get -o yaml`` output loads); never read."""

    @property
    def ref(self) -> str:
        """``<namespace>/<name>``, how messages and logs name this object."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

"""How a Store API process is configured: environment variables, as a pod receives them.

The names are whereami's (the Downward API and its ConfigMap keys) plus the few a local
process needs (``PORT``, ``HOST``). A pod field left unset is left out of the answer, as
whereami leaves out what its metadata server cannot tell.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from mcgw.store import errors

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a Store API process needs to know; see :meth:`from_env`."""

    pod_name: str = ""
    """``POD_NAME``; defaults to the host name, as a container's host name is its pod's."""
    pod_namespace: str = ""
    """``POD_NAMESPACE``."""
    pod_ip: str = ""
    """``POD_IP``."""
    node_name: str = ""
    """``NODE_NAME``."""
    cluster_name: str = ""
    """``CLUSTER_NAME`` (whereami asks the metadata server; a local pod is told)."""
    zone: str = ""
    """``ZONE``, e.g. ``us-west1-a``."""
    project_id: str = ""
    """``PROJECT_ID``."""
    gce_instance_id: str = ""
    """``GCE_INSTANCE_ID``: the node's numeric instance id."""
    gce_service_account: str = ""
    """``GCE_SERVICE_ACCOUNT``; defaults to ``<project_id>.svc.id.goog`` (the Workload
    Identity pool whereami reports) when a project is known."""
    pod_service_account: str = ""
    """``POD_SERVICE_ACCOUNT``."""
    metadata: str | None = None
    """``METADATA``: a free label echoed as ``metadata``; absent when unset."""
    echo_headers: bool = False
    """``ECHO_HEADERS=True`` adds a ``headers`` object (whereami's header-echo option)."""
    host: str = "0.0.0.0"
    """``HOST``: the address to listen on."""
    port: int = 8080
    """``PORT``: the TCP port to listen on; 0 picks a free one (tests)."""
    log_interval_s: float = 0.25
    """``LOG_INTERVAL``: seconds between flushes of the request log."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default: ``os.environ``).

        Raises:
            SettingError: a variable is set to a value that cannot be used.
        """
        env = os.environ if env is None else env
        project = env.get("PROJECT_ID", "")
        service_account = env.get("GCE_SERVICE_ACCOUNT", "")
        if not service_account and project:
            service_account = f"{project}.svc.id.goog"
        return cls(
            pod_name=env.get("POD_NAME") or socket.gethostname(),
            pod_namespace=env.get("POD_NAMESPACE", ""),
            pod_ip=env.get("POD_IP", ""),
            node_name=env.get("NODE_NAME", ""),
            cluster_name=env.get("CLUSTER_NAME", ""),
            zone=env.get("ZONE", ""),
            project_id=project,
            gce_instance_id=env.get("GCE_INSTANCE_ID", ""),
            gce_service_account=service_account,
            pod_service_account=env.get("POD_SERVICE_ACCOUNT", ""),
            metadata=env.get("METADATA"),
            echo_headers=_flag(env, "ECHO_HEADERS"),
            host=env.get("HOST") or "0.0.0.0",
            port=_port(env),
            log_interval_s=_seconds(env, "LOG_INTERVAL", 0.25),
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "")
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise errors.SettingError(name, value, "True or False")


def _port(env: Mapping[str, str]) -> int:
    value = env.get("PORT", "8080")
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise errors.SettingError("PORT", value, "a TCP port number, 0-65535")
    return port


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 60:
        raise errors.SettingError(name, value, "seconds, more than 0 and at most 60")
    return seconds

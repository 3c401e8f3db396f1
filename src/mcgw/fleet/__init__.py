"""The local fleet: a fleet's Deployments run as local processes standing in for pods.

GKE's multi-cluster Gateway needs clusters with pods behind Services; locally, each
cluster of the Fleet is a set of processes on this machine. The runtime gives every
pod what Kubernetes would: a name with a pod-template-hash, a node, a zone, an IP (its
own loopback address, ``127.<cluster>.<deployment>.<pod>``) and the Downward API's
environment. It then plays the two controllers mcgw relies on: the kubelet (start,
readiness by TCP connect, stop with SIGTERM then SIGKILL, container logs) and the
EndpointSlice controller (slices for the ready pods of each Service).

Modules:

* :mod:`~mcgw.fleet.pods` — pure: Resources → pod plans (names, IPs, env, commands).
* :mod:`~mcgw.fleet.endpoints` — pure: Services + ready pods → EndpointSlices.
* :mod:`~mcgw.fleet.containerlog` — stdout/stderr lines → ``k8s_container`` log entries.
* :mod:`~mcgw.fleet.runtime` — :class:`~mcgw.fleet.runtime.FleetRuntime`, the processes.
* :mod:`~mcgw.fleet.relay` — opt-in latency relays: each pod behind a TCP forwarder
  that delays traffic by the round trip between the gateway and the pod's region, so
  regions are as far apart on a laptop as on the map (``spec.network.simulateLatency``).

Glossary: a *pod* is a group of processes (one per container) sharing one address;
*ready* means every container with a port accepts TCP connections and none has exited;
*terminating* means asked to stop — out of the Services at once, SIGKILLed after the
grace period. A pod that dies unasked is restarted after a crash back-off (same name and
address, ``restarts`` counted); a stopped one is not.
"""

from __future__ import annotations

"""Where resources come from.

A provider turns some source of Kubernetes objects (files on disk today; kube contexts
later) into a stream of :class:`mcgw.config.resources.Resources` snapshots. Each
snapshot is complete: consumers never merge deltas. A source that becomes invalid
(a file saved half-written, a typo) produces an error event instead of a snapshot, and
the consumer keeps serving the last good one.
"""

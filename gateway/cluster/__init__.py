"""Several gateway nodes as one system, coordinated through Redis (off unless ``[cluster] redis_url``).

- :mod:`~gateway.cluster.ownership`: one upstream pull per camera (leases, first-come placement).
- :mod:`~gateway.cluster.bus`: control messages (policy changed, end session X, ...).
- :mod:`~gateway.cluster.events`: console events through a Redis Stream.
- :mod:`~gateway.cluster.sessions`: the cluster-wide session directory.
- :mod:`~gateway.cluster.node`: wiring into the app container.
"""

from gateway.cluster.ownership import CameraOwnership, OwnedElsewhere

__all__ = ["CameraOwnership", "OwnedElsewhere"]

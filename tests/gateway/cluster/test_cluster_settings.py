"""The ``[cluster]`` settings, and that a single node stays as it was (no Redis, in-process parts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.events import LocalEventBus
from gateway.settings import load_settings
from gateway.wiring import build_services
from streams import LocalOwnership


def test_cluster_is_off_by_default_and_a_single_node_uses_no_redis(tmp_path: Path) -> None:
    s = load_settings(None, data_dir=tmp_path)
    assert not s.cluster.enabled and s.shared_redis_url is None
    ld = build_services(s)
    assert ld.cluster is None
    assert type(ld.events) is LocalEventBus
    assert type(ld.hub.ownership) is LocalOwnership  # every camera is this node's to pull


def test_cluster_settings_validated(tmp_path: Path) -> None:
    s = load_settings(
        None,
        data_dir=tmp_path,
        cluster={"redis_url": "redis://127.0.0.1:1/0", "node_id": "gw-1", "advertise_url": "http://10.0.0.1:8000/"},
    )
    assert s.cluster.enabled and s.cluster.advertise_url == "http://10.0.0.1:8000"
    assert s.shared_redis_url == "redis://127.0.0.1:1/0"  # snapshots and positions follow the cluster's Redis
    with pytest.raises(ValidationError, match="redis_url"):
        load_settings(None, cluster={"redis_url": "http://x"})
    with pytest.raises(ValidationError, match="advertise_url"):
        load_settings(None, cluster={"advertise_url": "10.0.0.1:8000"})
    with pytest.raises(ValidationError, match="node_id"):
        load_settings(None, cluster={"node_id": "a b"})
    with pytest.raises(ValidationError, match="lease_s must exceed"):
        load_settings(None, cluster={"lease_s": 1.0, "renew_s": 0.5})
    assert s.cluster.placement == "least_loaded" and s.cluster.placement_slack == 2
    with pytest.raises(ValidationError, match="placement"):
        load_settings(None, cluster={"placement": "random"})
    with pytest.raises(ValidationError, match="placement_slack"):
        load_settings(None, cluster={"placement_slack": 0})
    with pytest.raises(ValidationError, match="event_group_idle_s"):
        load_settings(None, cluster={"event_group_idle_s": 1})
    with pytest.raises(ValidationError, match="event_group_idle_s"):
        load_settings(None, cluster={"event_group_idle_s": "soon"})
    assert load_settings(None, cluster={"event_group_idle_s": 60}).cluster.event_group_idle_s == 60


def test_cluster_node_is_wired_without_touching_redis_at_build(tmp_path: Path) -> None:
    from gateway.cluster.events import RedisEventBus
    from gateway.cluster.ownership import CameraOwnership

    s = load_settings(None, data_dir=tmp_path, cluster={"redis_url": "redis://127.0.0.1:1/0", "node_id": "gw-1"})
    ld = build_services(s)
    node = ld.cluster
    assert node is not None
    assert node.node_id == "gw-1" and node.url == "http://127.0.0.1:8000"
    assert isinstance(ld.hub.ownership, CameraOwnership)
    assert isinstance(ld.events, RedisEventBus)
    assert ld.events.group == "gw-1" and ld.events.group_idle_s == 3600  # its consumer group: the node id

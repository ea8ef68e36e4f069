"""Optional execution over a Dask cluster (the ``distributed`` extra); the only importer of dask.

``connect("local:N" | "tcp://HOST:PORT")`` gives a ``Cluster``; ``compare_on_cluster`` shards a
comparison's samples over its workers (bit-equal to the serial run); ``on_cluster`` wraps a target
so that its runs are tasks on the workers (a board farm, with ``resource=board``), and
``cluster_run_many`` runs localize's independent target runs at once. Nothing here is imported by
``import qprobe``; dask itself is imported only when a cluster is opened.
"""

from qprobe.execute.cluster import INSTALL_HINT, Cluster, ClusterSpec, connect, parse_cluster
from qprobe.execute.entry import compare_sharded, localize_on, target_on
from qprobe.execute.remote import RemoteBackend, cluster_run_many, on_cluster, run_remote
from qprobe.execute.shard import ShardJob, compare_on_cluster, compare_shard, shard_ranges

__all__ = [
    "INSTALL_HINT",
    "Cluster",
    "ClusterSpec",
    "RemoteBackend",
    "ShardJob",
    "cluster_run_many",
    "compare_on_cluster",
    "compare_sharded",
    "compare_shard",
    "connect",
    "localize_on",
    "on_cluster",
    "parse_cluster",
    "run_remote",
    "shard_ranges",
    "target_on",
]

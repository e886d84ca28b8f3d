"""Topologies: the `Topology` value, loaders (Zoo GML/GraphML, JSON), the generator, the built-in
catalogue and controller-equivalent routing."""

from .model import DEFAULT_QUEUE_PKTS, Link, Node, Topology, TopologyError
from .resolve import load

__all__ = ["DEFAULT_QUEUE_PKTS", "Link", "Node", "Topology", "TopologyError", "load"]

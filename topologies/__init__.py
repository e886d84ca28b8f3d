"""Topologies: the `Topology` value, loaders (Zoo GML/GraphML, JSON), the generator, the built-in
catalogue and controller-equivalent routing."""

from .model import Link, Node, Topology, TopologyError
from .resolve import load

__all__ = ["Link", "Node", "Topology", "TopologyError", "load"]

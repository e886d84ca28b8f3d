"""The RouteNet-Fermi-style graph neural network (TensorFlow / Keras 3).

Two kinds of nodes: flows and (directed) links. Each of T iterations
1. runs every flow's state through a GRU along the link states of its path (one symbolic RNN over
   path positions, masked for shorter paths: no Python loop over positions), and
2. updates every link from the hidden states of the flows crossing it, weighted by attention
   scores normalized with a softmax over the flows on that link.
The readout is per hop of every flow, as in RouteNet-Fermi: a last pass of the flows' GRU over
the final link states gives each flow a state at each position of its path, and from it and the
link's state a queue q (kbit, >= 0) the flow meets there and a jitter contribution (ms, >= 0).
A flow's delay is the sum over its path of q/capacity (kbit over Mbit/s is ms) plus each link's
propagation delay and, through a learned gate in [0, 1], its full buffer where more traffic
reaches it than it carries (`features.full_buffer_ms`: the queueing delay an overloaded drop-tail
link settles at, so that a twin trained on light load still predicts congestion); its jitter is
the sum of the contributions. Under the queueing delay at each hop lies a floor that is not
learned: a link's buffer where more UDP reaches it than 1.05 times its capacity, the part of it
filled since its UDP flows started, all of it once they have settled (`features.UDP_FULL_MARGIN`,
`features.udp_fill`, `link_floor`), since such a queue cannot drain; the learned part
meets a network at rates it has seen few of (germany_50 at 0.3-2 Mbit/s) without that knowledge.
Per hop rather than per link, two flows crossing one link may meet
different queues there: on the base corpus a TCP flow over an overloaded link measured 2-5 times
the link's full buffer (its losses recovered by retransmission), a UDP flow the buffer itself;
per-link readouts made the held-out delay MAPE 20.0 %, per-hop ones 17.8 % (the first 12
networks of the base corpus, state 24 x 3 iterations, 400-410 s of training).

Weights are created in `build` (the sublayers build on a one-flow graph), the math is in `call`,
the configuration in `get_config`, so a model is rebuilt from its stored configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .features import FLOW_FEATURES, LINK_FEATURES
from .tfload import keras, tf

INPUT_SPEC = {
    "flow_x": tf.TensorSpec([None, len(FLOW_FEATURES)], tf.float32),
    "link_x": tf.TensorSpec([None, len(LINK_FEATURES)], tf.float32),
    "path": tf.TensorSpec([None, None], tf.int32),
    "mask": tf.TensorSpec([None, None], tf.bool),
    "capacity": tf.TensorSpec([None], tf.float32),
    "link_delay": tf.TensorSpec([None], tf.float32),
    "link_full": tf.TensorSpec([None], tf.float32),
    "link_floor": tf.TensorSpec([None], tf.float32),
}


def _mlp(units: int, out: int | None = None, out_activation: str | None = None, name: str = "") -> keras.Sequential:
    layers = [keras.layers.Dense(units, activation="relu"), keras.layers.Dense(units, activation="relu")]
    if out is not None:
        layers.append(keras.layers.Dense(out, activation=out_activation))
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="ndt")
class RouteNet(keras.Model):
    def __init__(self, state: int = 32, iterations: int = 6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.iterations = iterations
        self.flow_embed = _mlp(state, name="flow_embed")
        self.link_embed = _mlp(state, name="link_embed")
        self.path_rnn = keras.layers.GRU(state, return_sequences=True, return_state=True, name="path_gru")
        self.att_score = keras.layers.Dense(1, name="attention")
        self.message = keras.layers.Dense(state, name="message")
        self.link_update = keras.layers.GRUCell(state, name="link_gru")
        # per hop of every flow, from the flow's path state there and the link's state: the queue
        # the flow meets (kbit) and its jitter contribution (ms)
        self.hop_readout = _mlp(state, 2, "softplus", name="hop_readout")
        # how much of a link's full buffer (the fluid model's, from offered rates) its flows see:
        # starts near all of it (sigmoid(3) = 0.95) and learns where the offered rates overstate
        # what arrives (D-ITG sent 85 % of its nominal rate on a loaded diamond)
        self.full_gate = keras.layers.Dense(1, kernel_initializer="zeros",
                                            bias_initializer=keras.initializers.Constant(3.0), name="full_gate")

    def build(self, input_shape: Any = None) -> None:
        """Create every weight by running the layers once on a one-flow graph (the sublayers build
        on their first call); the inputs' shapes do not change the weights."""
        if self.built:
            return
        self.call(to_tensors(tiny_graph()))
        self.built = True

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "state": self.state, "iterations": self.iterations}

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        hops = self.hops(inputs, training=training)
        delay = tf.reduce_sum(hops["queueing_ms"] + hops["propagation_ms"], axis=1)
        return delay, tf.reduce_sum(hops["jitter_ms"], axis=1)

    def hops(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        """Every flow's prediction hop by hop, [flows, positions] (0 past a path's end): the
        queueing delay the flow meets on the link at that position (ms: the queue over the
        link's capacity plus the gated full buffer, at least the link's floor), the link's propagation delay, the jitter
        contribution, and `attention`: the flow's share of the link's attention in the last
        iteration (how much the flow weighs on that link's state, summing to 1 over the link's
        flows). A flow's delay is the sum of its queueing and propagation delays, its jitter
        the sum of its contributions."""
        path, mask = inputs["path"], inputs["mask"]
        n_links = tf.shape(inputs["link_x"])[0]
        fh = self.flow_embed(inputs["flow_x"])
        lh = self.link_embed(inputs["link_x"])
        # Every (flow, position) of the padded path matrix, padding included: padding points at the
        # dummy link n_links and gets zero attention, so all shapes are static (no boolean masks).
        hop_link = tf.reshape(path, [-1])
        hop_on = tf.reshape(tf.cast(mask, tf.float32), [-1])
        pad = tf.zeros([1, self.state])
        alpha = tf.zeros_like(hop_on)
        for _ in range(self.iterations):
            lh_pad = tf.concat([lh, pad], 0)
            seq = tf.gather(lh_pad, path)  # [F, P, S]
            hidden, fh = self.path_rnn(seq, mask=mask, initial_state=fh, training=training)
            hop_h = tf.reshape(hidden, [-1, self.state])  # [F*P, S]
            score = self.att_score(tf.concat([hop_h, tf.gather(lh_pad, hop_link)], -1))[:, 0]
            top = tf.math.unsorted_segment_max(score, hop_link, n_links + 1)
            e = tf.exp(score - tf.gather(top, hop_link)) * hop_on
            alpha = e / (tf.gather(tf.math.unsorted_segment_sum(e, hop_link, n_links + 1), hop_link) + 1e-9)
            agg = tf.math.unsorted_segment_sum(alpha[:, None] * self.message(hop_h), hop_link, n_links + 1)
            lh, _ = self.link_update(agg[:-1], [lh], training=training)
        # readout pass: the flows' path states over the final link states
        lh_pad = tf.concat([lh, pad], 0)
        seq = tf.gather(lh_pad, path)
        hidden, _ = self.path_rnn(seq, mask=mask, initial_state=fh, training=training)
        hop = self.hop_readout(tf.concat([hidden, seq], -1))  # [F, P, 2]
        full = tf.sigmoid(self.full_gate(lh)[:, 0]) * inputs["link_full"]
        hop_capacity = _at_hops(inputs["capacity"], path, pad=1.0)
        hop_full = _at_hops(full, path)
        hop_prop = _at_hops(inputs["link_delay"], path)
        hop_floor = _at_hops(inputs["link_floor"], path)
        fmask = tf.cast(mask, tf.float32)
        queueing = tf.maximum(hop[..., 0] / hop_capacity + hop_full, hop_floor)
        return {"queueing_ms": queueing * fmask, "propagation_ms": hop_prop * fmask,
                "jitter_ms": hop[..., 1] * fmask, "attention": tf.reshape(alpha, tf.shape(fmask))}


def _at_hops(per_link: tf.Tensor, path: tf.Tensor, pad: float = 0.0) -> tf.Tensor:
    """[flows, positions]: a per-link value at each hop of each path (`pad` on the dummy link)."""
    return tf.gather(tf.concat([per_link, tf.fill([1], pad)], 0), path)


def tiny_graph() -> dict[str, np.ndarray]:
    """A normalized one-flow, one-link graph to trace a function with."""
    return {"flow_x": np.zeros((1, len(FLOW_FEATURES)), np.float32),
            "link_x": np.zeros((1, len(LINK_FEATURES)), np.float32),
            "path": np.zeros((1, 1), np.int32), "mask": np.ones((1, 1), bool),
            "capacity": np.ones(1, np.float32), "link_delay": np.zeros(1, np.float32),
            "link_full": np.zeros(1, np.float32), "link_floor": np.zeros(1, np.float32)}


def to_tensors(t: dict[str, Any]) -> dict[str, tf.Tensor]:
    return {k: tf.convert_to_tensor(t[k], dtype=spec.dtype) for k, spec in INPUT_SPEC.items()}


def build_model(state: int = 32, iterations: int = 6) -> RouteNet:
    """A model with its weights created (fresh)."""
    model = RouteNet(state=state, iterations=iterations)
    model.build()
    return model


def bucket(n: int, minimum: int = 8) -> int:
    """The size a dimension is padded to: the next of minimum, 1.5 minimum, 2 minimum, 3 minimum, ...
    (at most a third wasted), so that a compiled function sees few distinct shapes."""
    size = minimum
    while True:
        if n <= size:
            return size
        if n <= size * 3 // 2:
            return size * 3 // 2
        size *= 2


def pad_to_buckets(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pad flows, links and path positions to bucket sizes. Padded flows have an empty path, padded
    links are crossed by no flow; the real flows' predictions are the first rows of the output."""
    n_flows, n_pos = t["path"].shape
    n_links = t["link_x"].shape[0]
    f, p, n = bucket(n_flows, 64), bucket(n_pos, 4), bucket(n_links, 16)
    path = np.full((f, p), n, dtype=np.int32)
    path[:n_flows, :n_pos] = np.where(t["mask"], t["path"], n)
    mask = np.zeros((f, p), dtype=bool)
    mask[:n_flows, :n_pos] = t["mask"]
    out = {"path": path, "mask": mask}
    for key, rows in (("flow_x", f), ("link_x", n)):
        out[key] = np.zeros((rows, t[key].shape[1]), dtype=np.float32)
        out[key][: t[key].shape[0]] = t[key]
    out["capacity"] = np.ones(n, dtype=np.float32)
    out["capacity"][:n_links] = t["capacity"]
    for key in ("link_delay", "link_full", "link_floor"):
        out[key] = np.zeros(n, dtype=np.float32)
        out[key][:n_links] = t[key]
    return out


PredictFn = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def make_predict_fn(model: RouteNet, xla: bool = True) -> PredictFn:
    """A prediction function on normalized graph tensors (numpy in, numpy out).

    With `xla`, the model is compiled by XLA (about twice as fast on a CPU) once per bucketed shape;
    without it, one shape-agnostic trace serves every shape."""

    @tf.function(input_signature=[INPUT_SPEC], reduce_retracing=True, jit_compile=xla)
    def compiled(inputs: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        return model(inputs, training=False)

    def predict(t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n_flows = t["path"].shape[0]
        d, j = compiled(to_tensors(pad_to_buckets(t) if xla else t))
        return d.numpy()[:n_flows], j.numpy()[:n_flows]

    return predict

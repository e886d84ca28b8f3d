"""The RouteNet-Fermi-style graph neural network (TensorFlow / Keras 3).

Two kinds of nodes: flows and (directed) links. Each of T iterations
1. runs every flow's state through a GRU along the link states of its path (one symbolic RNN over
   path positions, masked for shorter paths: no Python loop over positions), and
2. updates every link from the hidden states of the flows crossing it, weighted by attention
   scores normalized with a softmax over the flows on that link.
The readout is per link: a queue occupancy q (kbit, >= 0) and a jitter contribution (ms, >= 0).
A flow's delay is the sum over its path of q/capacity (kbit over Mbit/s is ms) plus the
propagation delay; its jitter is the sum of the contributions.

Weights are created in `build` (via the sublayers), the math is in `call`, the configuration in
`get_config`, so a model is rebuilt from its stored configuration.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

INPUT_SPEC = {
    "flow_x": tf.TensorSpec([None, 4], tf.float32),
    "link_x": tf.TensorSpec([None, 4], tf.float32),
    "path": tf.TensorSpec([None, None], tf.int32),
    "mask": tf.TensorSpec([None, None], tf.bool),
    "capacity": tf.TensorSpec([None], tf.float32),
    "link_delay": tf.TensorSpec([None], tf.float32),
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
        self.occupancy = _mlp(state, 1, "softplus", name="occupancy")
        self.jitter_head = _mlp(state, 1, "softplus", name="jitter")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "state": self.state, "iterations": self.iterations}

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        path, mask = inputs["path"], inputs["mask"]
        n_links = tf.shape(inputs["link_x"])[0]
        fh = self.flow_embed(inputs["flow_x"])
        lh = self.link_embed(inputs["link_x"])
        hop_link = tf.boolean_mask(path, mask)  # the link of every (flow, position) on a path
        pad = tf.zeros([1, self.state])
        for _ in range(self.iterations):
            seq = tf.gather(tf.concat([lh, pad], 0), path)  # [F, P, S], dummy state on padding
            hidden, fh = self.path_rnn(seq, mask=mask, initial_state=fh, training=training)
            hop_h = tf.boolean_mask(hidden, mask)  # [H, S]
            score = self.att_score(tf.concat([hop_h, tf.gather(lh, hop_link)], -1))[:, 0]
            top = tf.math.unsorted_segment_max(score, hop_link, n_links)
            e = tf.exp(score - tf.gather(top, hop_link))
            alpha = e / (tf.gather(tf.math.unsorted_segment_sum(e, hop_link, n_links), hop_link) + 1e-9)
            agg = tf.math.unsorted_segment_sum(alpha[:, None] * self.message(hop_h), hop_link, n_links)
            lh, _ = self.link_update(agg, [lh], training=training)
        queue_kbit = self.occupancy(lh)[:, 0]
        link_delay = queue_kbit / inputs["capacity"] + inputs["link_delay"]
        link_jitter = self.jitter_head(lh)[:, 0]
        fmask = tf.cast(mask, tf.float32)
        zero = tf.zeros([1])
        delay = tf.reduce_sum(tf.gather(tf.concat([link_delay, zero], 0), path) * fmask, axis=1)
        jitter = tf.reduce_sum(tf.gather(tf.concat([link_jitter, zero], 0), path) * fmask, axis=1)
        return delay, jitter


def to_tensors(t: dict[str, Any]) -> dict[str, tf.Tensor]:
    return {k: tf.convert_to_tensor(t[k], dtype=spec.dtype) for k, spec in INPUT_SPEC.items()}


def build_model(state: int = 32, iterations: int = 6) -> RouteNet:
    return RouteNet(state=state, iterations=iterations)


def make_predict_fn(model: RouteNet):
    """A compiled prediction function with a shape-agnostic signature (one trace)."""

    @tf.function(input_signature=[INPUT_SPEC], reduce_retracing=True)
    def predict(inputs: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        return model(inputs, training=False)

    return predict

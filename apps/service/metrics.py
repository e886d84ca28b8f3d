"""`/metrics` in the Prometheus text format (prometheus_client).

The service's own measurements (what-if prediction latency, what-if answers by decision) are
recorded as they happen; the twin's state is read from the stores at every scrape, from the
closed loop's latest run (the one whose status was updated last):

  ndt_prediction_latency_seconds      histogram of the service's what-if predictions
  ndt_whatif_requests_total{decision} what-if answers
  ndt_loop_prediction_latency_ms      the loop's median per-window prediction time
  ndt_nmse_db{model}                  delay NMSE (dB) of the last 100 labeled predictions, serving and shadow
  ndt_sla_window_predicted_violations predicted violations in the newest evaluated window
  ndt_sla_predicted_violations_total  over the run; with ndt_sla_{precision,recall,f1,accuracy}
  ndt_drift_detections_total          detections in the run (acted on or ignored)
  ndt_retraining_state{ndt_retraining_state}  the model manager's state (a state set)
  ndt_model_version                   number N of the active registry://delay:vN; ndt_model_info{uri}
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, StateSetMetricFamily

from sync.manager import STATES
from sync.report import PLAN_STATES, plan_states
from sync.sla import summary
from sync.store import LoopStore, loop_status
from vtwin.evaluate import nmse_db

from .serving import OBJECTIVE, ServingTwin

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def recent_nmse(stores, run_id: str, n: int = 100) -> dict[str, float | None]:
    preds = LoopStore(stores).recent_predictions(run_id, 20 * n)
    if not preds:
        return {"serving": None, "shadow": None}
    labels = {k: lab.delay_ms for k, lab in stores.labels_of(run_id, min(p["window"] for p in preds)).items()
              if lab.delay_ms is not None}
    rows = [(labels[(p["window"], p["flow_key"])], p["delay_ms"], p["shadow_delay_ms"]) for p in preds
            if (p["window"], p["flow_key"]) in labels][:n]
    if len(rows) < 2:
        return {"serving": None, "shadow": None}
    a = np.asarray(rows, dtype=float)
    return {"serving": nmse_db(a[:, 1], a[:, 0]), "shadow": nmse_db(a[:, 2], a[:, 0])}


class TwinCollector:
    """The twin's state, read from the stores at scrape time."""

    def __init__(self, serving: ServingTwin) -> None:
        self.serving = serving

    def collect(self):
        stores = self.serving.stores()
        active = self.serving.active_version()
        yield GaugeMetricFamily("ndt_model_version", "number N of the active registry://delay:vN (0: none)",
                                value=int(active[1:]) if active else 0)
        yield InfoMetricFamily("ndt_model", "the active model", value={"uri": f"registry://{OBJECTIVE}:{active}"
                                                                       if active else "none"})
        run = LoopStore(stores).latest_run()
        if run is None:
            return
        status = loop_status(stores, run)
        state = ((status or {}).get("manager") or {}).get("state")
        yield StateSetMetricFamily("ndt_retraining_state", "the model manager's state in the latest run",
                                   value={s: s == state for s in STATES})
        ms = (status or {}).get("predict_ms")
        if ms is not None:
            yield GaugeMetricFamily("ndt_loop_prediction_latency_ms", "median per-window prediction time of the loop",
                                    value=float(ms))
        plans = GaugeMetricFamily("ndt_plans", "change plans of the latest run by state", labels=["state"])
        for state, n in plan_states(stores, run).items():
            if state in PLAN_STATES:
                plans.add_metric([state], n)
        yield plans
        drifts = stores.event_count(run, ("drift", "drift_ignored"))
        c = CounterMetricFamily("ndt_drift_detections", "drift detections in the latest run", labels=["run"])
        c.add_metric([run], drifts)
        yield c
        g = GaugeMetricFamily("ndt_nmse_db", "delay NMSE (dB) of the last 100 labeled predictions", labels=["model"])
        for model, value in recent_nmse(stores, run).items():
            if value is not None:
                g.add_metric([model], value)
        yield g
        sla = summary(stores, run)
        if sla["windows"]:
            latest = sla["latest"] or {}
            yield GaugeMetricFamily("ndt_sla_window_predicted_violations",
                                    "predicted SLA violations in the newest evaluated window",
                                    value=latest.get("predicted_violations") or 0)
            t = CounterMetricFamily("ndt_sla_predicted_violations", "predicted SLA violations in the run",
                                    labels=["run"])
            t.add_metric([run], sla["predicted_violations"])
            yield t
            for key in ("precision", "recall", "f1", "accuracy"):
                if sla[key] is not None:
                    yield GaugeMetricFamily(f"ndt_sla_{key}", f"SLA violation {key} against measured delay",
                                            value=sla[key])


class Metrics:
    def __init__(self, serving: ServingTwin) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("ndt_prediction_latency_seconds", "what-if prediction time of the service",
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=self.registry)
        self.whatif = Counter("ndt_whatif_requests", "what-if answers by decision", ["decision"],
                              registry=self.registry)
        self.registry.register(TwinCollector(serving))

    def render(self) -> bytes:
        return generate_latest(self.registry)

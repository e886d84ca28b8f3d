"""Model operations: train, deploy (canary or shadow), monitor (with automatic rollback) and roll
back, every decision recorded in weights.db with its evidence (and a deployment evidence pack).

- train: on a range of the labeled store (runs, windows), for an objective (delay or jitter),
  within a time budget, optionally warm-started; the new version is registered as a candidate;
  the response carries the training run id, the requested metrics on held-out windows and the
  model URI. One training at a time.
- deploy: a candidate beside the active model, as a canary answering a share of predictions or
  as a shadow predicting every request without answering; one deployment at a time, with
  rollback thresholds.
- monitor: the deployment's candidate and the active model on the newest labeled windows
  (accuracy), the candidate's prediction latency, and a drift score (the two-sample
  Kolmogorov-Smirnov statistic between the per-window mean flow rates the candidate was trained
  on and those of the newest windows: 0 same distribution, 1 disjoint). A breached threshold
  rolls the deployment back automatically; a healthy check can promote it.
- rollback: ends a deployment, or without one rolls the active model back to the previous one.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtwin.registry import Registry, RegistryError, parse_uri, uri

from .deployment_pack import deployment_pack
from .serving import OBJECTIVE, ServingTwin
from .store import OpsStore

DEFAULT_THRESHOLDS = {"max_delay_mape": None, "max_mape_regression": 5.0, "max_latency_ms": 100.0,
                      "max_drift_score": 0.5}
METRICS = ("mape", "nmse_db", "mae_ms")
DEFAULT_CANARY_WEIGHT = 0.1


class OpsError(ValueError):
    """A model-operations request that cannot be carried out (a 4xx)."""


class NotFound(OpsError):
    pass


class Conflict(OpsError):
    """The twin's state forbids it now (a training or deployment under way, a deployment that ended)."""


@dataclass
class TrainRequest:
    runs: list[str] | None = None
    from_window: int | None = None
    to_window: int | None = None
    objective: str = "delay"
    metrics: tuple[str, ...] = ("mape", "nmse_db")
    budget_s: float = 60.0
    warm_start: str | None = None
    held_out: float = 0.2
    promote: bool = False


def _kpi_metrics(held: dict[str, Any], kpi: str, which: tuple[str, ...]) -> dict[str, float | None]:
    """The asked measures of `kpi` from a model's held-out scores (`vtwin.lifecycle`)."""
    names = {"mape": f"{kpi}_mape", "nmse_db": f"{kpi}_nmse_db", "mae_ms": f"{kpi}_mae_ms"}
    return {m: _r(held.get(names[m])) for m in which}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)


class ModelOps:
    def __init__(self, serving: ServingTwin) -> None:
        self.serving = serving
        self._train_lock = threading.Lock()
        self._lock = threading.RLock()
        running = self.running()
        if running:  # a service restarted mid-deployment picks its candidate up again
            self.serving.start_candidate(running["id"], parse_uri(running["uri"])[1], running["strategy"],
                                         running["weight"])

    @property
    def store(self) -> OpsStore:
        return OpsStore(self.serving.stores())

    # -- records ----------------------------------------------------------------------------------
    def _decide(self, kind: str, subject: str, decision: str, evidence: dict[str, Any]) -> dict[str, Any]:
        rec = {"id": uuid.uuid4().hex[:12], "at": time.time(), "kind": kind, "subject": subject,
               "decision": decision, "evidence": json.dumps(evidence, default=str), "pack": None}
        self.store.add_decision(rec)
        return self._decision(rec)

    @staticmethod
    def _decision(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "evidence": json.loads(row["evidence"] or "{}"),
                "at_iso": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["at"]))}

    def decisions(self, subject: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return [self._decision(r) for r in self.store.decisions(subject, limit)]

    def _deployment(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "thresholds": json.loads(row["thresholds"] or "{}"),
                "evidence_pack_url": f"/reports/deployments/{row['id']}.html"}

    def deployment(self, dep_id: str) -> dict[str, Any]:
        row = self.store.deployment(dep_id)
        if row is None:
            raise NotFound(f"no deployment {dep_id!r}")
        return self._deployment(row)

    def deployments(self) -> list[dict[str, Any]]:
        return [self._deployment(r) for r in self.store.deployments()]

    def running(self) -> dict[str, Any] | None:
        rows = self.store.deployments("running")
        return self._deployment(rows[-1]) if rows else None

    def _pack(self, dep_id: str) -> None:
        dep = self.deployment(dep_id)
        files = deployment_pack(self.serving.stores().root, dep, self.decisions(dep_id))
        self.store.set_pack(dep_id, files["html"])

    # -- train ------------------------------------------------------------------------------------
    def train(self, req: TrainRequest) -> dict[str, Any]:
        from vtwin.dataset import from_stores, split
        from vtwin.lifecycle import TrainSpec, train_and_register
        from vtwin.train import OBJECTIVES

        if req.objective not in OBJECTIVES:
            raise OpsError(f"objective must be {' or '.join(OBJECTIVES)}, got {req.objective!r}")
        bad = set(req.metrics) - set(METRICS)
        if bad:
            raise OpsError(f"unknown metric(s) {', '.join(sorted(bad))}; use {', '.join(METRICS)}")
        if not 1 <= req.budget_s <= 3600:
            raise OpsError(f"budget_s must be between 1 and 3600 seconds, got {req.budget_s}")
        if not self._train_lock.acquire(blocking=False):
            raise Conflict("a training is already running; try again when it ends")
        try:
            stores = self.serving.stores()
            registry = Registry(stores)
            known = stores.run_ids()
            missing = set(req.runs or []) - known
            if missing:
                raise NotFound(f"no run(s) {', '.join(sorted(missing))}")
            lo = req.from_window if req.from_window is not None else -(1 << 62)
            hi = req.to_window if req.to_window is not None else 1 << 62
            samples = [s for s in from_stores(stores, req.runs or None) if lo <= s.window <= hi]
            if len(samples) < 4:
                raise OpsError(f"only {len(samples)} labeled window(s) in that range; at least 4 are needed")
            if req.warm_start:
                parse_uri(req.warm_start)  # a clear error for a malformed reference
            fit, test = split(samples, held_out=req.held_out)
            run_id = "train-" + uuid.uuid4().hex[:10]
            spec = TrainSpec(objective=req.objective, source="service", budget_s=req.budget_s,
                             warm_start=req.warm_start, promote=req.promote, eager=req.budget_s < 45,
                             lr=3e-3 if req.budget_s < 45 else 1e-3)
            res = train_and_register(registry, fit, test, spec)
            held = res["metrics"]["held_out"]["overall"]
            metrics = {"delay": _kpi_metrics(held, "delay", req.metrics), "jitter": _kpi_metrics(held, "jitter",
                                                                                                   req.metrics),
                       "held_out_windows": res["metrics"]["held_out"]["windows"], "train_windows": len(fit)}
            training = {**res["metrics"]["training"], "run_id": run_id}
            out = {"run_id": run_id, "model_uri": res["uri"], "status": res["status"], "metrics": metrics,
                   "training": training, "dataset": {"runs": req.runs, "from_window": req.from_window,
                                                     "to_window": req.to_window, "windows": len(samples)}}
            self._decide("train", res["uri"], f"registered as {res['status']}", out)
            return out
        finally:
            self._train_lock.release()

    # -- deploy -----------------------------------------------------------------------------------
    def deploy(self, model_uri: str, strategy: str, weight: float | None,
               thresholds: dict[str, Any] | None) -> dict[str, Any]:
        if strategy not in ("canary", "shadow"):
            raise OpsError(f"strategy must be canary or shadow, got {strategy!r}")
        if strategy == "canary":
            weight = DEFAULT_CANARY_WEIGHT if weight is None else weight
            if not 0 < weight <= 1:
                raise OpsError(f"a canary's weight must be above 0 and at most 1, got {weight}")
        unknown = set(thresholds or {}) - set(DEFAULT_THRESHOLDS)
        if unknown:
            raise OpsError(f"unknown threshold(s) {', '.join(sorted(unknown))}; use {', '.join(DEFAULT_THRESHOLDS)}")
        try:
            objective, version = parse_uri(model_uri)
        except RegistryError as exc:
            raise OpsError(str(exc)) from None
        if objective != OBJECTIVE:
            raise OpsError(f"the twin serves {OBJECTIVE} models, not {objective}")
        with self._lock:
            registry = self.serving.registry()
            try:
                info = registry.show(objective, version)
            except RegistryError as exc:
                raise NotFound(str(exc)) from None
            active = registry.active(OBJECTIVE)
            if version == active:
                raise Conflict(f"{model_uri} is already the active model")
            if info["status"] in ("rejected", "rolled_back"):
                raise Conflict(f"{model_uri} was {info['status'].replace('_', ' ')}; train or pick another version")
            if self.running():
                raise Conflict(f"deployment {self.running()['id']} is running; roll it back or promote it first")
            th = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
            dep = {"id": "dep-" + uuid.uuid4().hex[:10], "uri": uri(objective, version),
                   "baseline": uri(OBJECTIVE, active) if active else None, "strategy": strategy,
                   "weight": weight if strategy == "canary" else None, "thresholds": json.dumps(th),
                   "status": "running", "created_at": time.time(), "ended_at": None}
            self.serving.start_candidate(dep["id"], version, strategy, dep["weight"] or 0.0)
            self.store.add_deployment(dep)
            self._decide("deploy", dep["id"], f"{strategy} started", {"model": dep["uri"], "baseline": dep["baseline"],
                                                                      "weight": dep["weight"], "thresholds": th})
            self._pack(dep["id"])
            return self.deployment(dep["id"])

    def _end(self, dep_id: str, status: str) -> None:
        self.store.end_deployment(dep_id, status)
        self.serving.end_candidate(dep_id)

    # -- monitor ----------------------------------------------------------------------------------
    def _recent_samples(self, windows: int) -> list:
        from vtwin.dataset import from_stores

        stores = self.serving.stores()
        run = stores.last_labeled_run()
        if run is None:
            return []
        samples = sorted(from_stores(stores, [run]), key=lambda s: s.window)
        return samples[-windows:]

    def _window_rates(self, runs: dict[str, list[int]]) -> np.ndarray:
        stores = self.serving.stores()
        out = []
        for run, (lo, hi) in runs.items():
            for w in stores.windows(run, after=lo - 1, upto=hi, run_flows_only=True):
                rates = [f.measured_bps for f in w.flows if f.measured_bps is not None]
                if rates:
                    out.append(float(np.mean(rates)))
        return np.asarray(out, dtype=float)

    def drift_score(self, version: str, samples: list) -> float | None:
        from scipy.stats import ks_2samp

        data_range = self.serving.registry().show(OBJECTIVE, version)["data_range"] or {}
        trained = self._window_rates({r: w for r, w in data_range.items() if isinstance(w, list) and len(w) == 2})
        recent = self._window_rates({samples[0].run: [samples[0].window, samples[-1].window]}) if samples else []
        if len(trained) < 2 or len(recent) < 2:
            return None
        return round(float(ks_2samp(trained, recent).statistic), 4)

    def monitor(self, dep_id: str | None, windows: int = 20, promote: bool = False) -> dict[str, Any]:
        from vtwin.evaluate import scores

        if not 2 <= windows <= 10000:
            raise OpsError(f"windows must be between 2 and 10000, got {windows}")
        with self._lock:
            dep = self.deployment(dep_id) if dep_id else self.running()
            if dep is None:
                raise NotFound("no deployment is running")
            if dep["status"] != "running":
                raise Conflict(f"deployment {dep['id']} is {dep['status']}, not running")
            cand = self.serving.candidate
            if cand is None or cand.deployment_id != dep["id"]:
                self.serving.start_candidate(dep["id"], parse_uri(dep["uri"])[1], dep["strategy"], dep["weight"] or 0)
                cand = self.serving.candidate
            samples = self._recent_samples(windows)
            evidence: dict[str, Any] = {"windows": [samples[0].run, samples[0].window, samples[-1].window]
                                        if samples else None, "candidate": None, "serving": None}
            if samples:
                yd = np.concatenate([s.delay_ms for s in samples])
                yj = np.concatenate([s.jitter_ms for s in samples])
                snaps = [s.snapshot for s in samples]
                d, j, _ = cand.predictor.predict(snaps)
                evidence["candidate"] = scores(d, j, yd, yj)
                active = self.serving.active_version()
                if active:
                    sd, sj, _ = self.serving.active_predictor().predict(snaps)
                    evidence["serving"] = scores(sd, sj, yd, yj)
                for _ in range(5):  # the candidate's latency on the newest snapshot
                    t0 = time.perf_counter()
                    cand.predictor.predict([snaps[-1]])
                    self.serving.record_latency(cand.version, t0)
            evidence["latency"] = self.serving.latency(cand.version)
            evidence["drift_score"] = self.drift_score(cand.version, samples)
            evidence["traffic"] = self.serving.candidate_status()
            breaches = self._breaches(dep["thresholds"], evidence)
            evidence["breaches"] = breaches
            if breaches:
                self._end(dep["id"], "rolled_back")
                self.serving.registry().set_status(OBJECTIVE, cand.version, "rolled_back")
                decision = "rolled back: " + "; ".join(breaches)
            elif promote:
                if evidence["candidate"] is None:
                    raise Conflict("no labeled windows to judge the candidate on; not promoted")
                self.serving.registry().promote(OBJECTIVE, cand.version)
                self._end(dep["id"], "promoted")
                decision = f"healthy; promoted {dep['uri']} to active"
            else:
                decision = "healthy" if evidence["candidate"] else "no labeled windows yet; nothing to judge"
            rec = self._decide("monitor", dep["id"], decision, evidence)
            self._pack(dep["id"])
            return {"deployment": self.deployment(dep["id"]), "decision": decision, "rolled_back": bool(breaches),
                    "evidence": evidence, "decision_id": rec["id"]}

    @staticmethod
    def _breaches(th: dict[str, Any], ev: dict[str, Any]) -> list[str]:
        out = []
        cand, serv = ev.get("candidate") or {}, ev.get("serving") or {}
        mape, base = cand.get("delay_mape"), serv.get("delay_mape")
        if th.get("max_delay_mape") is not None and mape is not None and mape > th["max_delay_mape"]:
            out.append(f"delay MAPE {mape} % above {th['max_delay_mape']} %")
        if th.get("max_mape_regression") is not None and mape is not None and base is not None \
                and mape - base > th["max_mape_regression"]:
            out.append(f"delay MAPE {mape} % is {mape - base:.2f} points worse than the serving model's {base} %")
        lat = (ev.get("latency") or {}).get("median_ms")
        if th.get("max_latency_ms") is not None and lat is not None and lat > th["max_latency_ms"]:
            out.append(f"median prediction latency {lat} ms above {th['max_latency_ms']} ms")
        drift = ev.get("drift_score")
        if th.get("max_drift_score") is not None and drift is not None and drift > th["max_drift_score"]:
            out.append(f"drift score {drift} above {th['max_drift_score']}")
        return out

    # -- rollback ---------------------------------------------------------------------------------
    def rollback(self, dep_id: str | None, reason: str | None) -> dict[str, Any]:
        with self._lock:
            dep = self.deployment(dep_id) if dep_id else self.running()
            if dep is not None:
                if dep["status"] != "running":
                    raise Conflict(f"deployment {dep['id']} is {dep['status']}, not running")
                self._end(dep["id"], "rolled_back")
                self.serving.registry().set_status(OBJECTIVE, parse_uri(dep["uri"])[1], "rolled_back")
                rec = self._decide("rollback", dep["id"], "deployment rolled back", {"reason": reason,
                                                                                    "model": dep["uri"]})
                self._pack(dep["id"])
                return {"rolled_back": dep["uri"], "deployment": self.deployment(dep["id"]),
                        "active": self.serving.active_version(), "decision_id": rec["id"]}
            try:
                res = self.serving.registry().rollback(OBJECTIVE)
            except RegistryError as exc:
                raise Conflict(str(exc)) from None
            rec = self._decide("rollback", uri(OBJECTIVE, res["rolled_back"]), f"active model back to {res['active']}",
                               {"reason": reason, **res})
            return {"rolled_back": uri(OBJECTIVE, res["rolled_back"]), "active": uri(OBJECTIVE, res["active"]),
                    "deployment": None, "decision_id": rec["id"]}

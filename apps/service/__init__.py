"""The twin service: its HTTP API (FastAPI), served by `ndt serve` on 127.0.0.1:8000 by default.

Read endpoints are open; the model-operations endpoints that change what serves (POST /ml/*)
need `Authorization: Bearer <token>`, the token from the config file or $NDT_TOKEN (without
either, `ndt serve` makes one and writes it to <data>/service.token, mode 0600). Every error is
a JSON body {"error": "..."} with a 4xx status: 401 without a token, 403 with a wrong one, 404
for unknown ids, 409 when the state forbids it (a deployment or training under way, no active
model), 422 for malformed requests.

    GET  /twin/status                 lab, serving model and deployment, loop, detector, retraining, latest window
    GET  /twin/snapshots[?run=&limit=&offset=]   time-indexed network states from the traffic store
    GET  /twin/snapshots/{id}         one state: flows (with predictions and labels) and links
    POST /twin/whatif                 what-if question (see apps/whatif/); its evidence page is drawn when asked for
    GET  /reports/whatif/{id}.html|json, /reports/deployments/{id}.html|json   evidence packs
    POST /ml/train | /ml/deploy | /ml/monitor | /ml/rollback     model operations (token)
    GET  /ml/models | /ml/deployments | /ml/deployments/{id} | /ml/decisions
    GET  /metrics                     Prometheus text format

The application is made in `app` from routers by job (`routes_twin`, `routes_ml`,
`routes_reports`); errors map to status codes in one place (`errors`); the serving twin, model
operations and metrics it holds are `serving`, `modelops` and `metrics`.
"""

from .app import create_app

__all__ = ["create_app"]

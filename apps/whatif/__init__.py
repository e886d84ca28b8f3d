"""What-if questions to the virtual twin: the engine, without HTTP or a command line.

A request (`request.WhatIfRequest`) names a stored snapshot (`snapshot_id`, the traffic store's
snapshot id), a scenario (`scenarios`: a typed model per `type`, each with its `apply(network)`),
an SLO and intents (`intents`: classes with `check(pre, post)`). The engine (`engine`) applies
the scenario to the snapshot's network (`network`), recomputes routing the way the controller
does, predicts every flow before and after with the serving model, checks the SLO per flow and
the intents, scores the risk and decides APPROVE, REVIEW or REJECT; `evidence` draws its pack.
"""

from .engine import Answer, Question, answer, question, save_answer, write_evidence
from .network import Network, UnknownSnapshot, WhatIfError, baseline, route, utilization
from .request import WhatIfRequest, WhatIfResponse, one_line, parse_request

__all__ = ["Answer", "Network", "Question", "UnknownSnapshot", "WhatIfError", "WhatIfRequest", "WhatIfResponse",
           "answer", "baseline", "one_line", "parse_request", "question", "route", "save_answer", "utilization",
           "write_evidence"]

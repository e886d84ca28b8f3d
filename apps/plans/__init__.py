"""Change plans: what the optimizer proposes, what an operator (or autonomous policy) decides,
what the controller applies and what the lab measures.

    store     plans and every transition (proposed, approved, rejected, applied, verified,
              rolled back) with who or what made it
    propose   a plan from an optimizer's answer and the what-if engine's verdict: plan.md,
              rollback.yaml, test_matrix.json under <data>/plans/<id>/
    actions   approve, reject, apply (PUT /routing), verify and keep or roll back (revert)
    measure   the measured windows before and after a change, and the test matrix's verdict
    stage     the loop's stage for `ndt run --optimize propose|auto`
"""

from .actions import StalePlan, apply, approve, reject, verify
from .propose import Gate, merged_policy, propose, what_if
from .store import OPEN, STATES, PlanError, PlanStore, UnknownPlan

__all__ = ["OPEN", "STATES", "Gate", "PlanError", "PlanStore", "StalePlan", "UnknownPlan", "apply", "approve",
           "merged_policy", "propose", "reject", "verify", "what_if"]

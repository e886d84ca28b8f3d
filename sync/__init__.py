"""Synchronization: drift detection on the traffic store, the model manager, and the closed loop."""

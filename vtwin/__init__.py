"""The virtual twin: snapshots and graph tensors, the RouteNet-Fermi-style GNN, training,
evaluation, baselines, the model registry (weights store) and the serving predictor."""

"""Traffic and data: D-ITG profiles, schedules and runner; log decoding; the collector;
the traffic, labeled and weights stores."""

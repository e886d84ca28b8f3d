"""Network applications and the `ndt` command line."""

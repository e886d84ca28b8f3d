"""What the applications share: the configuration file (`config`), tables and JSON output on the
command line (`table`), and the HTML of evidence packs (`pack`)."""

"""The `fm5` command: the layer on top of harness_ext, training and reports (see fm5.cli)."""

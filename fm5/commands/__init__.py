"""One module per `fm5` command, each `add_arguments(parser)` + `main(args)` (`main(args, extra)` for the commands
that pass unknown flags on: train, eval) and nothing else of substance; the library does the work. fm5.cli
assembles them. Heavy imports stay inside `main`, so `fm5 --help` loads no torch, numpy or lm-eval."""

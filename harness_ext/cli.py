"""The command layer's old address, `python -m harness_ext.cli ...` (e.g. `torchrun -m harness_ext.cli eval`), kept
for scripts and launchers. The commands live in the `fm5` package above the library (fm5.cli); this module imports
nothing from it and only hands the process over to `python -m fm5` when run as a program."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("fm5", run_name="__main__", alter_sys=True)

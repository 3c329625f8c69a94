"""The gate's settings: the built-in defaults and a gate YAML read over them, every key checked (type, range, known
metric; one line naming the file and the field). The rule itself is harness_ext.gate."""

from __future__ import annotations

import json

from harness_ext import claims
from harness_ext import results
from harness_ext.errors import UsageError
from harness_ext.files import number, read_yaml
from harness_ext.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

DEFAULT_CONFIG = {
    "tasks": ["fm5_qa_open", "fm5_qa_closed"],  # add fm5_qa_mc_open / _closed to gate the probe (gate_mc.yaml)
    "metrics": list(results.METRICS),
    "resamples": DEFAULT_RESAMPLES,
    "seed": DEFAULT_SEED,
    "allow_limit": False,
    "tolerance": {
        "perplexity": {"relative": 0.05},
        "exact_match": {"absolute": 0.02},
        "f1": {"absolute": 0.02},
        "bertscore_precision": {"absolute": 0.01},
        "bertscore_recall": {"absolute": 0.01},
        "bertscore_f1": {"absolute": 0.01},
        "acc": {"absolute": 0.05},
        "acc_norm": {"absolute": 0.05},
        "acc_pmi": {"absolute": 0.05},
        "margin": {"absolute": 0.1},
    },
    "task_tolerance": {},  # e.g. {fm5_qa_closed: {f1: {absolute: 0.03}}}
    # off by default; e.g. {task: fm5_qa_mc_closed, metric: margin, tolerance: {absolute: 0.1}}: the candidate's
    # knowledge effect (seen minus unseen gap) must not fall below the baseline's by more than the tolerance
    "knowledge": None,
}


def load_config(path: str | None) -> dict:
    """The built-in defaults, updated by a gate YAML; every key checked (one line naming the file and field)."""
    config = json.loads(json.dumps(DEFAULT_CONFIG))
    if not path:
        return config
    user = read_yaml(path, UsageError, "gate config")
    user = {} if user is None else user
    if not isinstance(user, dict):
        raise UsageError(f"{path}: a gate config is a mapping of settings (see examples/gate.yaml), not "
                         f"{type(user).__name__}")
    unknown = [k for k in user if k not in config]
    if unknown:
        raise UsageError(f"{path}: unknown gate config keys {sorted(map(str, unknown))}; known: {sorted(config)}")
    for key, value in user.items():
        where = f"{path}: field {key}"
        if key == "tasks":
            config[key] = _names(value, where)
        elif key == "metrics":
            config[key] = [_metric(m, where) for m in _names(value, where)]
        elif key == "resamples":
            config[key] = _integer(value, where, 10_000, 1_000_000)
        elif key == "seed":
            config[key] = _integer(value, where, 0, 2 ** 32 - 1)
        elif key == "allow_limit":
            if not isinstance(value, bool):
                raise UsageError(f"{where}: expected true or false, got {value!r:.40}")
            config[key] = value
        elif key == "tolerance":
            config[key].update({_metric(m, where): _spec(v, f"{where}.{m}") for m, v in _mapping(value, where).items()})
        elif key == "task_tolerance":
            config[key] = {str(t): {_metric(m, f"{where}.{t}"): _spec(v, f"{where}.{t}.{m}")
                                    for m, v in _mapping(specs, f"{where}.{t}").items()}
                           for t, specs in _mapping(value, where).items()}
        elif key == "knowledge" and value is not None:
            rule = _mapping(value, where)
            if set(rule) - {"task", "metric", "tolerance"} or "metric" not in rule:
                raise UsageError(f"{where}: must be {{task: T, metric: M, tolerance: {{absolute: X}}}}")
            config[key] = {"task": _names([rule.get("task", claims.PRIMARY[0])], f"{where}.task")[0],
                           "metric": _metric(rule["metric"], f"{where}.metric"),
                           "tolerance": _spec(rule.get("tolerance", {"absolute": 0}), f"{where}.tolerance")}
    return config


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _names(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.isprintable() and v for v in value):
        raise UsageError(f"{where}: expected a list of names, got {value!r:.60}")
    return value


def _metric(name, where: str) -> str:
    if not isinstance(name, str) or name not in results.METRICS:
        raise UsageError(f"{where}: unknown metric {name!r:.40}; known: {list(results.METRICS)}")
    return name


def _integer(value, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{where}: expected an integer from {low} to {high}, got {value!r:.40}")
    return value


def _spec(spec, where: str) -> dict:
    """A tolerance: {absolute: X} or {relative: X}, X a finite number >= 0."""
    ok = isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("absolute", "relative")
    if ok:
        try:
            number(next(iter(spec.values())), where, UsageError)
        except UsageError:
            ok = False
    if not ok:
        raise UsageError(f"{where}: a tolerance is {{absolute: X}} or {{relative: X}} with X >= 0, got {spec!r:.60}")
    return spec

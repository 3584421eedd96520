"""What a sweep has found: its trials best first (``--status``), the best config (``--best``).

Both read an existing sweep directory: its ``sweep.json`` says where the
study lives (a database URL given again with ``--storage`` when it has a
password), and the study keeps the base config and the space, so the best
trial's config is rebuilt exactly as the trial ran it.
"""

import json
import math
import os
from pathlib import Path

import click

from .. import toml
from ..errors import SweepError
from .storage import masked, open_storage, quiet_optuna

__all__ = ["status_lines", "best_config", "STATES"]

STATES = ("COMPLETE", "PRUNED", "RUNNING", "WAITING", "FAIL")


def _open_existing(sweep_dir, storage):
    optuna = quiet_optuna()
    sweep_dir = Path(sweep_dir)
    info_path = sweep_dir / "sweep.json"
    if not info_path.exists():
        raise SweepError(f"{sweep_dir}: not a sweep directory (no sweep.json)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        where = storage or info["storage"]
        study_name = info["study"]
    except (ValueError, KeyError, TypeError) as error:
        raise SweepError(f"{info_path}: not a sweep.json trainkit wrote ({error})") from None
    if "***" in where:
        raise SweepError(f"{sweep_dir}: give --storage URL (sweep.json keeps no password)")
    if "://" not in where:
        journal = where.removeprefix("open-lock:")
        if not os.path.isabs(journal):  # written before paths were kept absolute
            candidates = [sweep_dir / Path(journal).name, Path(journal)]
            found = next((c for c in candidates if c.exists()), candidates[0])
            where = where[: len(where) - len(journal)] + os.path.abspath(found)
            journal = where.removeprefix("open-lock:")
        if not os.path.exists(journal):
            raise SweepError(f"{sweep_dir}: its journal {journal} is missing")
    store = open_storage(where, note=lambda line: click.echo(line, err=True))
    try:
        return optuna.load_study(study_name=study_name, storage=store)
    except KeyError as error:
        raise SweepError(f"{sweep_dir}: study {study_name!r} not in {masked(where)}") from error


def _order(study):
    """Trials best first: finished by value, then pruned by their last value, then the rest."""
    maximize = study.direction.name == "MAXIMIZE"
    rank = {s: i for i, s in enumerate(STATES)}

    def value(trial):
        if trial.value is not None:
            return trial.value
        if trial.intermediate_values:
            return trial.intermediate_values[max(trial.intermediate_values)]
        return math.nan

    def key(trial):
        v = value(trial)
        v = math.inf if math.isnan(v) else (-v if maximize else v)
        return (rank[trial.state.name], v, trial.number)

    return [(t, value(t)) for t in sorted(study.get_trials(deepcopy=False), key=key)]


def status_lines(sweep_dir, storage=None):
    """The trials of a sweep, best first, as lines of text."""
    study = _open_existing(sweep_dir, storage)
    ordered = _order(study)
    counts = {}
    for trial, _ in ordered:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials yet"
    lines = [f"study {study.study_name} ({study.direction.name.lower()}): {summary}"]
    lines.append(f"{'trial':>5}  {'state':<9} {'value':>11} {'steps':>6}  params  (run dir)")
    for trial, value in ordered:
        params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        run_dir = trial.user_attrs.get("run_dir", "")
        shown = "" if math.isnan(value) else f"{value:.6g}"
        steps = trial.user_attrs.get("steps", "")
        lines.append(
            f"{trial.number:>5}  {trial.state.name.lower():<9} {shown:>11} {steps!s:>6}  "
            f"{params}  ({run_dir})"
        )
        if trial.state.name == "FAIL":
            why = trial.user_attrs.get("error") or (
                f"interrupted by {trial.user_attrs['interrupted'].removeprefix('interrupted by ')}"
                if trial.user_attrs.get("interrupted")
                else "no reason recorded (its process may have died)"
            )
            lines.append(f"{'':>5}  {'':<9} why: {why}")
    return lines


def best_config(sweep_dir, storage=None):
    """TOML text of the best finished trial's config (and its trial), for ``--best``."""
    from .spec import SweepSpec

    study = _open_existing(sweep_dir, storage)
    try:
        best = study.best_trial
    except ValueError:
        raise SweepError(f"{sweep_dir}: no trial has finished yet") from None
    base = json.loads(study.user_attrs["trainkit_base"])
    source = study.user_attrs.get("trainkit_source", "sweep")
    space = json.loads(study.user_attrs["trainkit_sweep"])["space"]
    from .space import Param

    params = {k: Param(**v) for k, v in space.items()}
    spec = SweepSpec(source, Path(source).parent, base, params)
    values = {k: params[k].decode(v) for k, v in best.params.items()}
    cfg = spec.trial_config(values, f"trial {best.number}")
    return toml.dumps(
        cfg.as_dict(),
        comments=[
            f"The best trial of sweep {study.study_name}: trial {best.number}, "
            f"value {best.value:.6g} ({study.direction.name.lower()}), in "
            f"{best.user_attrs.get('run_dir', '?')}",
            f"from {source}; train it with: trainkit train THIS_FILE",
        ],
    )

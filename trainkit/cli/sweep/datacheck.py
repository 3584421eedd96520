"""The data of a sweep checked against each corner of its space, before any trial.

:meth:`~trainkit.cli.sweep.spec.SweepSpec.check` builds every corner's
model; :func:`check_corner_data` then runs the checks a trial's run would
make on its data and ``[training]`` (shapes, dtypes, label ranges, NaNs,
whether noise reaches the loss) and stops where compiling would begin (the
trainer's ``on_compile`` hook), so a space whose corner cannot train on the
data is one line before the first trial, not one failed trial after another.
"""

import json

from .. import config
from ..errors import DataError

__all__ = ["check_corner_data"]


class _Checked(Exception):
    """Raised where compiling would begin: the data and options passed their checks."""


class _StopBeforeCompiling:
    def on_compile(self, trainer):
        raise _Checked


def check_corner_data(cfg, net, loaded, scratch):
    """Check ``cfg``'s data against ``net`` and ``[training]`` as a run would, without
    compiling; ConfigError (one line naming the config and key) if they do not fit."""
    import os

    from regularizers.errors import ArgumentError

    from .. import files, run

    key = json.dumps(cfg.data, sort_keys=True, default=str)
    with config.backend(cfg.mode):
        if key not in loaded:
            folder = os.path.join(scratch, str(len(loaded)))
            os.makedirs(folder)
            try:
                loaded[key] = files.load(cfg.data, cfg.kind, folder)
            except DataError as error:
                raise run.data_error(cfg, error) from error
        data = loaded[key]
        try:
            arrays = [
                None
                if part is None
                else [files.fit_input(part[0], net.n_in, net.structure.in_shape)] + list(part[1:])
                for part in (data.train, data.valid)
            ]
        except DataError as error:
            raise run.data_error(cfg, error) from error
        kwargs = cfg.training_kwargs()
        kwargs.update(
            progress=False,
            log=False,
            save_progress=os.path.join(scratch, "check.npz"),
            callbacks=[_StopBeforeCompiling()],
        )
        try:
            for _ in net.itertrain(arrays[0], arrays[1], algo=cfg.algo, **kwargs):
                break
        except _Checked:
            return
        except ArgumentError as error:
            section = "data" if error.argument.split()[0] in ("train", "valid") else "training"
            raise cfg.rephrase(section, error) from error
        except (ValueError, TypeError) as error:
            raise cfg.rephrase("training", error) from error

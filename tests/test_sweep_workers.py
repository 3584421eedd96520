"""``trainkit sweep --workers 2`` runs trials in two worker processes at once.

Each trial's first update waits (at most a minute) until trials in two
distinct processes have started: one process running the trials one after
another would never get there, and the sweep would fail.
"""

import os
import time

from test_sweep import SWEEP, load_study, write_data

from trainkit.cli import sweep as sweeping

WAIT_S = 60


class MeetAnother:
    """A trainer callback: note this process's id, then wait for another's."""

    def __init__(self, folder):
        self.folder = os.fspath(folder)

    def on_start(self, trainer):
        open(os.path.join(self.folder, f"pid-{os.getpid()}"), "w").close()
        deadline = time.monotonic() + WAIT_S
        while len(os.listdir(self.folder)) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no second worker process started within {WAIT_S} s")
            time.sleep(0.05)


def test_two_workers_are_two_processes_running_at_once(tmp_path):
    write_data(tmp_path)
    config = SWEEP.replace("max_updates = 30", "max_updates = 5")
    (tmp_path / "sweep.toml").write_text(config)
    met = tmp_path / "met"
    met.mkdir()
    sweep_dir = tmp_path / "runs" / "pair"
    sweeping.run_sweep(
        tmp_path / "sweep.toml",
        trials=2,
        workers=2,
        run_dir=sweep_dir,
        callbacks=[MeetAnother(met)],
        echo=lambda *args, **kwargs: None,
    )
    trials = load_study(sweep_dir).get_trials()
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"} and len(trials) == 2
    pids = {t.user_attrs["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {f"pid-{pid}" for pid in pids} == set(os.listdir(met))

"""The example scripts under scripts/ run as they are (shortened, on the test flags)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.mark.parametrize(
    "script, args, expect",
    [
        ("xor.py", ["--max-updates", "30"], "accuracy"),
        ("regression.py", ["--max-updates", "20"], "held-out R²"),
        ("autoencoder.py", ["--max-updates", "20"], "held-out reconstruction R²"),
        ("adding_problem.py", ["--steps", "4", "--max-updates", "3"], "held-out mse"),
        ("text_classifier.py", ["--max-updates", "5"], "held-out accuracy"),
        ("conv1d_sensors.py", ["--max-updates", "5"], "held-out accuracy"),
        ("digits_images.py", ["--max-updates", "5"], "held-out accuracy"),
        ("digits_transformer.py", ["--max-updates", "3", "--width", "8"], "with positions"),
        ("tied_autoencoder.py", ["--max-updates", "5"], "held-out reconstruction R²"),
    ],
)
def test_example_runs(script, args, expect):
    env = dict(os.environ)
    # conftest.py has set the test flags in os.environ; the scripts inherit them
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert expect in out.stdout


def test_readme_names_every_option_regularizer_and_optimizer():
    """The README's tables stay true as options, regularizers and optimizers are added."""
    import regularizers
    from trainkit import optimizers
    from trainkit.training.options import OPTIONS

    readme = (SCRIPTS.parent / "README.md").read_text(encoding="utf-8")
    names = [*OPTIONS, *regularizers.names(), *optimizers.names()]
    missing = [name for name in names if f"`{name}`" not in readme]
    assert not missing, f"README.md does not mention {missing}"


def test_readme_config_is_valid(tmp_path):
    """The TOML config shown in the README passes `trainkit explain`."""
    import re

    import numpy as np
    from click.testing import CliRunner

    from trainkit.cli import cli

    readme = (SCRIPTS.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    (block,) = [b for b in blocks if "[model]" in b]  # the run config (the other: [sweep])
    (tmp_path / "run.toml").write_text(block, encoding="utf-8")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "digits.npz",
        images=rng.uniform(size=(20, 8, 8)).astype("float32"),
        labels=np.arange(20) % 10,
    )
    result = CliRunner().invoke(cli, ["explain", str(tmp_path / "run.toml")])
    assert result.exit_code == 0, result.output
    assert "recurrent_norm" in result.output and "hid1.hh" in result.output


def test_ci_runs_the_readme_commands():
    """.ci/run runs README's set-up and test commands exactly as written."""
    import re

    readme = (SCRIPTS.parent / "README.md").read_text(encoding="utf-8")
    ci = (SCRIPTS.parent / ".ci" / "run").read_text(encoding="utf-8")
    setup, first_run, tests = re.search(r"## Quick start\n\n```bash\n(.*?)```", readme, re.S)[
        1
    ].splitlines()
    assert first_run == "trainkit train --example digits"
    ci_lines = [
        line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_lines == [setup, tests]

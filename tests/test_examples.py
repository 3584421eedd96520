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
    ],
)
def test_example_runs(script, args, expect):
    env = dict(os.environ)
    env.setdefault("PYTENSOR_FLAGS", "mode=FAST_COMPILE,floatX=float32,warn_float64=raise,cxx=")
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
    from trainkit.options import OPTIONS

    readme = (SCRIPTS.parent / "README.md").read_text(encoding="utf-8")
    names = [*OPTIONS, *regularizers.names(), *optimizers.names()]
    missing = [name for name in names if f"`{name}`" not in readme]
    assert not missing, f"README.md does not mention {missing}"

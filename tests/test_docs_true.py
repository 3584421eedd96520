"""What the README, the --help texts and the shipped configs say is true (issue 15)."""

import re
import shlex
from pathlib import Path

import numpy as np
from test_cli import invoke

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_config_trains_and_its_evaluate_line_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # digits.npz as the README says to write it
    (recipe,) = re.findall(r'`python -c "(.*?)"`', README)
    assert "digits.npz" in recipe
    exec(recipe, {})  # noqa: S102  (the README's own one-liner)
    blocks = re.findall(r"```toml\n(.*?)```", README, flags=re.S)
    (block,) = [b for b in blocks if "[model]" in b]
    (tmp_path / "run.toml").write_text(block, encoding="utf-8")
    trained = invoke("train", "run.toml", "--run-dir", "runs/a", "--set", "training.max_epochs=1")
    assert trained.exit_code == 0, trained.output + trained.stderr
    with np.load("digits.npz") as f:
        np.savez("test.npz", images=f["images"][:50], labels=f["labels"][:50])
    # the lines that evaluate this config's run use its array names
    lines = [x for x in README.splitlines() if x.startswith("trainkit evaluate runs/a/")]
    assert lines and all("--array images --y labels" in x for x in lines), lines
    args = shlex.split(lines[0].split("#")[0])[1:]
    evaluated = invoke(*args)
    assert evaluated.exit_code == 0, evaluated.output + evaluated.stderr
    assert "acc" in evaluated.output


def test_lengths_and_the_default_algorithm_are_where_users_look():
    listed = invoke("list", "config")
    assert listed.exit_code == 0, listed.output
    assert re.search(r"^  lengths +array name", listed.output, flags=re.M)
    options = invoke("list", "options")
    assert "default rmsprop" in options.output
    helped = invoke("train", "--help")
    assert "lengths" in helped.output and "rmsprop" in helped.output
    assert 'lengths = "' in README and "default\n`rmsprop`" in README


def test_one_figure_for_the_digits_run():
    toml = (ROOT / "trainkit" / "cli" / "examples" / "digits.toml").read_text()
    helped = invoke("--help").output
    figures = {
        "digits.toml": re.search(r"offline, ~?(?:about )?([\d.]+) ?s", toml),
        "--help": re.search(r"about ([\d.]+) seconds", helped),
        "README": re.search(r"about ([\d.]+) seconds later", README),
    }
    found = {k: (m.group(1) if m else None) for k, m in figures.items()}
    assert None not in found.values(), found
    assert len(set(found.values())) == 1, found


def test_paths_named_in_the_docs_exist():
    names = re.compile(r"(?<![\w/.-])((?:trainkit|docs|scripts|benchmarks|tests)/[\w./-]+)")
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    sources += sorted((ROOT / "trainkit").rglob("*.md")) + sorted(
        (ROOT / "trainkit").rglob("*.toml")
    )
    sources += sorted((ROOT / "trainkit" / "cli").glob("*.py"))
    sources += sorted((ROOT / "scripts" / "configs").glob("*.toml"))
    missing = []
    for source in sources:
        for match in names.finditer(source.read_text(encoding="utf-8")):
            path = match.group(1).rstrip(".,:;)")
            if not (ROOT / path).exists():
                missing.append(f"{source.relative_to(ROOT)}: {path}")
    assert not missing, missing


def test_no_shipped_text_says_jax_is_an_extra_or_that_the_benchmark_runs_numba_silently():
    lstm = (ROOT / "scripts" / "configs" / "digits_lstm.toml").read_text()
    assert "pip install -e '.[jax]'" not in lstm
    bench = (ROOT / "benchmarks" / "data_parallel.py").read_text()
    assert "mode=mode" in bench and '"--mode", default="NUMBA"' in bench
    distributed = (ROOT / "docs" / "distributed.md").read_text()
    assert "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" in distributed
    assert "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" in README

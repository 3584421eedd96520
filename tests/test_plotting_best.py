"""curves.png marks the validation that restore_best restores (issue 9, item 8)."""

import math

from trainkit.cli import plotting


def rows():
    # lowest loss (0.30) first at step 20, again at 40; highest accuracy at step 30
    table = [
        (10, 0.9, 0.50),
        (20, 0.3, 0.80),
        (30, 0.4, 0.97),
        (40, 0.3, 0.85),
        (50, math.nan, 0.99),
    ]
    return [
        {"step": s, "train_loss": 1.0, "valid_loss": v, "train_acc": 0.5, "valid_acc": a}
        for s, v, a in table
    ]


def annotations(axes):
    return [(t.get_text(), t.xy) for t in axes.texts]


def test_best_row_is_the_first_lowest_finite_loss():
    assert plotting.best_row(rows()) == 1
    assert plotting.best_row([{"valid_loss": math.nan}]) is None


def test_every_panel_marks_the_restored_step():
    loss, acc = plotting.plot_curves(rows()).axes
    assert annotations(loss) == [("best 0.3", (20, 0.3))]
    assert annotations(acc) == [("acc 0.8 at best loss", (20, 0.8))]

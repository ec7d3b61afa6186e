"""`corel-sweep` end to end on digits (tiny), and its choice of the best lambda."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import training.data
from training.sweep import SweepPoint, app, best_point, format_table


def test_best_point_takes_the_highest_mean_and_the_smaller_lambda_on_ties() -> None:
    points = [
        SweepPoint(0.5, [0.75, 0.25], [1, 2]),
        SweepPoint(0.15, [0.5, 0.5], [2, 2]),
        SweepPoint(0.85, [0.25, 0.5], [1, 1]),
    ]
    assert best_point(points).lam == 0.15
    assert "| 0.15 **best** | 0.5000 ± 0.0000" in format_table("cosine", points)


def test_sweep_runs_on_digits_and_never_reads_the_test_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = training.data.load_dataset

    def load_without_test(*args: object, **kwargs: object) -> training.data.Dataset:
        data = real_load(*args, **kwargs)  # type: ignore[arg-type]
        data.x_test = np.full_like(data.x_test, np.nan)  # any use would poison the scores
        data.y_test = np.full_like(data.y_test, -1)
        return data

    monkeypatch.setattr(training.data, "load_dataset", load_without_test)
    out, plot = tmp_path / "sweep.json", tmp_path / "sweep.png"
    result = CliRunner().invoke(
        app,
        [
            "--loss",
            "cosine",
            "--dataset",
            "digits",
            "--lams",
            "0.15,0.5",
            "--epochs",
            "2",
            "--seeds",
            "0",
            "--max-train",
            "300",
            "--threads",
            "1",
            "--quiet",
            "--plot",
            str(plot),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best lambda for cosine on digits (validation):" in result.output
    report = json.loads(out.read_text())
    assert report["split"] == "validation"
    assert report["best_lam"] in (0.15, 0.5)
    assert [p["lam"] for p in report["points"]] == [0.15, 0.5]
    assert all(0.0 <= p["mean"] <= 1.0 for p in report["points"])
    assert plot.stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "cce"], "has no lambda to sweep"),
        (
            ["--loss", "cosine", "--lams", "0.5,1.5", "--dataset", "digits"],
            "lam must lie in [0, 1]",
        ),
    ],
)
def test_sweep_rejects_what_it_cannot_sweep(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output

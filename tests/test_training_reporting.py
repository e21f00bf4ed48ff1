"""The reporter's fixed-format lines, and the console reporter on a synthetic run."""

import io

from rich.console import Console

from toytorch.reporting import (
    ConsoleReporter,
    format_duration,
    format_metrics_line,
    format_summary,
)
from toytorch.training import CheckpointSaved, Evaluated, Finished, Started, Step


def test_durations():
    assert format_duration(42.4) == "42s"
    assert format_duration(312) == "5m12s"
    assert format_duration(3 * 3600 + 125) == "3h02m"
    assert format_duration(float("inf")) == "?"


def test_metrics_line_is_fixed_format():
    step = Step(250, 2000, 2.03451, 9.81e-4, 4123.4, 312.0, "tokens")
    ev = Evaluated(250, {"val_loss": 2.08123, "perplexity": 8.0142}, 2.1)
    assert format_metrics_line(step, ev) == (
        "step  250/2000 | loss 2.0345 | val 2.0812 | ppl 8.01 | lr 9.81e-04 | "
        "4,123 tok/s | eta 5m12s"
    )
    assert format_metrics_line(step).startswith("step  250/2000 | loss 2.0345 | lr")


def test_summary():
    done = Finished(2000, "completed", 125.0, {"val_loss": 1.8988, "perplexity": 6.68})
    assert format_summary(done, "ck") == (
        "finished at step 2000 in 2m05s: val 1.8988, ppl 6.68; checkpoint ck"
    )
    assert (
        format_summary(Finished(7, "stopped", 3.0), None) == "stopped at step 7 in 3s"
    )


def test_console_reporter_prints_decisions_lines_and_summary():
    out = io.StringIO()
    report = ConsoleReporter(Console(file=out, width=200, highlight=False))
    report(
        Started(0, 4, "cpu", 123, "tokens", ["device: cpu", "model: 123 parameters"])
    )
    for i in range(1, 5):
        report(Step(i, 4, 3.0 - i / 10, 1e-3, 1000.0, 4.0 - i))
    report(Evaluated(4, {"val_loss": 2.5, "perplexity": 12.18}, 2.75))
    report(CheckpointSaved(4, "checkpoints/x"))
    report(Finished(4, "completed", 9.0, {"val_loss": 2.5}))
    text = out.getvalue()
    assert "device: cpu\nmodel: 123 parameters\n" in text
    assert "step 4/4 | loss 2.6000 | val 2.5000 | ppl 12.18 |" in text
    assert text.rstrip().endswith(
        "finished at step 4 in 9s: val 2.5000; checkpoint checkpoints/x"
    )

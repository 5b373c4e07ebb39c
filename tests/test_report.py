"""diagnostics.draw.report: one offline HTML file, byte-identical for the same runs, every run string escaped."""

import base64
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from plotly.offline import get_plotlyjs
from synthetic_runs import write_synthetic_run

from diagnostics import open_run
from diagnostics.draw import report
from runformat.writer import RunWriter

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def write_hostile_run(root, name=IMG):
    """A run whose every free-text field tries to inject HTML (names cannot hold "/", so the name is the img)."""
    rng = np.random.default_rng(1)
    with RunWriter(
        str(root), name, config={"description": SCRIPT, "contrastive": {"weight": 0.5}, "comment": IMG + SCRIPT}
    ) as w:
        for step in range(11):
            w.log_metrics(step, {"loss/total": 1.0 / (1 + step), "loss/contrastive": 0.5})
        z = rng.standard_normal((60, 8)).astype(np.float32)
        w.log_snapshot(10, embeddings=z, positives=z + 0.1, labels=np.arange(60) % 3)
        w.log_metrics(10, {"eval/recon_mse": 0.02})
    open_run(f"{root}/{name}").save_notes(f"We saw {SCRIPT} and {IMG}.\nSecond line </script>")
    return f"{root}/{name}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    paths = []
    for name, weight in (("lam-0", 0.0), ("lam-1", 1.0)):
        write_synthetic_run(root, name, weight=weight, steps=40, snapshot_every=20, n=90, d=8, images=False)
        paths.append(str(root / name))
    open_run(paths[0]).save_notes("baseline: no contrastive term")
    return root, paths


def values(arr) -> list:
    """A plotly JSON array: a list, or a typed array {"dtype": "f8", "bdata": base64} (plotly >= 6)."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"])).tolist()
    return list(arr)


def body_of(text: str) -> str:
    return text.split("</head>", 1)[1]


def plots(text: str) -> dict[str, list]:
    """div id -> the traces plotly will draw there, read back from the report."""
    out = {}
    for div, data in re.findall(r'Plotly\.newPlot\(\s*"([^"]+)",\s*(\[.*?\]),\s*\{', text, flags=re.S):
        out[div] = json.loads(data)
    return out


def test_same_runs_same_bytes(runs):
    _, paths = runs
    first = report.build_report(paths)
    assert first == report.build_report(paths)
    assert first.count(get_plotlyjs()[:300]) == 1  # plotly.js inlined exactly once
    assert not re.search(r"<script[^>]+src=", first)  # nothing fetched from a network
    assert "uuid" not in body_of(first)


def test_all_sections_with_their_content(runs):
    _, paths = runs
    text = report.build_report(paths)
    assert re.findall(r"<section id='(\w+)'>", text) == list(report.SECTIONS)
    figs = plots(text)
    # one figure of linked metric panels, the plane, per run: histograms, spectrum, projection; the ablation;
    # no alarm timeline: these runs raise no alarm and switch nothing, and an empty chart becomes its reason (#23)
    assert len(figs) == 1 + 1 + 3 * 2 + 1 and all(k.startswith("fig-") for k in figs)
    alarms = text.split("<section id='alarms'>")[1].split("</section>")[0]
    assert "<p class='note'>No alarms and no config events for lam-0, lam-1" in alarms
    grid = next(data for data in figs.values() if any("meta" in t and "panel" in t["meta"] for t in data))
    panels = {}
    for t in grid:
        if isinstance(t.get("meta"), dict):
            panels.setdefault(t["meta"]["panel"], {})[t["name"]] = len(values(t["x"]))
    assert panels["loss/total"] == {"lam-0": 41, "lam-1": 41}  # the losses, logged every step
    assert panels["eval/recon_mse"] == {"lam-0": 3, "lam-1": 3}  # at the snapshots 0, 20, 40
    assert len(panels) == 6  # report.DEFAULT_METRICS, all logged by these runs
    by_title = {tuple(t["name"] for t in data): data for data in figs.values()}
    assert ("lam-0", "lam-1", "lam-0", "lam-1") in by_title  # the ablation: a point per run in each of 2 panels
    assert ("positive pairs", "negative pairs", "hardest negative") in by_title
    assert ("step 0", "step 20", "step 40") in by_title  # the spectra at the 3 snapshots
    projection = next(d for names, d in by_title.items() if names[0].startswith("label"))
    assert sum(len(values(t["x"])) for t in projection) == 90  # every point of a 90-row snapshot
    assert "<td>contrastive.weight</td>" in text or "<th>contrastive.weight</th>" in text  # the config diff row
    assert "baseline: no contrastive term" in text
    assert "Raising λ from 0 to 1" in text


def test_sections_without_data_are_left_out_and_numbers_rounded(tmp_path):
    with RunWriter(str(tmp_path), "plain", config={"seed": 1}) as w:  # no λ, no snapshot, no notes
        for step in range(5):
            w.log_metrics(step, {"loss/total": 1 / 3 + step * 1e-7})
    text = report.build_report([str(tmp_path / "plain")])
    assert re.findall(r"<section id='(\w+)'>", text) == ["overview", "metrics"]
    final = re.search(r"<h3>Final values</h3>(.*?)</table>", text, flags=re.S).group(1)
    assert "<td>0.3333</td>" in final  # 4 significant digits, last = best here
    assert "0.33333" not in text.split("<section id='metrics'>")[1].split("</section>")[0].split("<h3>")[1]


def test_sections_subset_and_bad_section(runs):
    _, paths = runs
    text = report.build_report(paths, sections=["notes", "config"])
    assert re.findall(r"<section id='(\w+)'>", text) == ["config", "notes"]
    assert "Plotly" not in text  # no figures, no 4 MB of plotly.js
    with pytest.raises(ValueError, match="sections"):
        report.build_report(paths, sections=["bogus"])
    with pytest.raises(ValueError, match="run_paths_or_runs"):
        report.build_report([])


def test_every_run_string_is_escaped(runs, tmp_path):
    root, paths = runs
    hostile = write_hostile_run(tmp_path)
    text = report.build_report([paths[0], hostile])
    body = body_of(text)
    assert SCRIPT not in body and IMG not in body and "<img" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # shown as text (description, notes)
    assert "&lt;img src=x onerror=alert(1)&gt;" in body  # the run name
    assert "Second line &lt;/script&gt;" in body
    # every <script> in the body is one of ours: plotly's newPlot blocks
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", body, flags=re.S)
    assert scripts and all("Plotly.newPlot" in s for s in scripts)


def test_cli_writes_the_same_report(runs, tmp_path):
    root, paths = runs
    out1, out2 = tmp_path / "a.html", tmp_path / "b.html"
    for out in (out1, out2):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "diagnostics",
                "report",
                "--root",
                str(root),
                "lam-0",
                "lam-1",
                "--sections",
                "overview,metrics,config,notes",
                "-o",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    assert out1.read_bytes() == out2.read_bytes()
    assert out1.read_text() == report.build_report(paths, ["overview", "metrics", "config", "notes"])

"""What the README and docs claim, held to the code and to the files they quote: each figure quoted
from results/reference/ is recomputed from the file it names, every `gpubench` command and flag and
every `make` target they show exists, every command is in the README's list with a line and a link,
and each preset's run count is the planner's."""

import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from bench.cli.commands import COMMANDS
from bench.cli.options import parser
from bench.plan import grid as planner
from bench.plan.presets import PRESET_DIR, load_preset
from bench.run.runner import clock

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "results" / "reference"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def text(page: Path) -> str:
    """The page with its lines joined, as a reader reads a sentence across a line break."""
    return " ".join(page.read_text().split())


def rows(folder: str) -> list[dict]:
    return [json.loads(line) for line in (REFERENCE / folder / "runs.jsonl").read_text().splitlines()]


def quick() -> dict:
    """results/reference/cpu/quick: its runs, and the share of their time that was measured windows."""
    runs = rows("cpu/quick")
    share = sum(r["window_s"] or 0 for r in runs) / sum(r["wall_s"] for r in runs)
    # the sweep's wall time is not a row's: the reference README gives it with the command that made it
    wall = re.search(r"\| `quick` \|.*?(\d+) runs in (\d+:\d\d)", (REFERENCE / "README.md").read_text())
    assert wall and int(wall.group(1)) == len(runs)
    return {"runs": len(runs), "share": f"{share:.0%}", "wall": wall.group(2)}


def tune_vs_grid() -> dict:
    """results/reference/cpu/tune-vs-grid: the tuner against the grid on quick's data (its second line)."""
    lines = (REFERENCE / "cpu/tune-vs-grid/tune-vs-grid.jsonl").read_text().splitlines()
    on_quick = next(json.loads(line) for line in lines if json.loads(line)["tune"].get("runs_to_reach") == 15)
    settings = len(pd.read_csv(REFERENCE / "cpu/tune-vs-grid/quick-tune/tune.csv"))
    return {
        "best": f"{on_quick['tune']['img_s']:,.0f}",
        "runs": on_quick["tune"]["runs"],
        "wall": clock(on_quick["tune"]["wall_s"]),
        "grid_best": f"{on_quick['grid']['img_s']:.0f}",
        "grid_runs": on_quick["grid"]["runs"],
        "reached": on_quick["tune"]["runs_to_reach"],
        "settings": settings,
    }


# (page, the sentence as the page says it, the figures it quotes from the file it names)
CLAIMS = [
    ("README.md", "it took {wall} for {runs} runs, {share} of it measured windows", quick),
    ("docs/knobs.md", "{runs} runs in {wall} on 2 CPU cores, {share} of it measured windows", quick),
    (
        "README.md",
        "reached the grid's best ({grid_best} images/s, every point twice) at run {reached} of the grid's "
        "{grid_runs}, and went on to {best} images/s (cache, batch 60, XLA) in {runs} runs",
        tune_vs_grid,
    ),
    (
        "docs/tune.md",
        "{settings} settings, {runs} runs, {wall}, best {best} images/s, the grid's best of {grid_best} reached at "
        "run {reached} of the grid's {grid_runs}",
        tune_vs_grid,
    ),
]


@pytest.mark.parametrize("page, sentence, figures", CLAIMS, ids=[f"{c[0]}: {c[1][:30]}" for c in CLAIMS])
def test_a_figure_quoted_from_the_reference_is_the_files(page, sentence, figures):
    quoted = sentence.format(**figures())
    assert quoted in text(ROOT / page), f"{page} should say: {quoted}"


def shown_commands() -> list[tuple[str, list[str]]]:
    """(page, the words) of every `gpubench ...` the pages show, in code blocks and inline code:
    optional parts unbracketed, alternatives (`a | b`) split, comments and `...` left out."""
    found = []
    for page in PAGES:
        source = page.read_text()
        code = re.findall(r"```(?:sh|bash)?\n(.*?)```", source, re.S) + re.findall(r"`(gpubench [^`]+)`", source)
        for block in code:
            for line in block.splitlines():
                line = line.split("#")[0].replace("[", " ").replace("]", " ").replace("...", " ")
                if not line.strip().startswith("gpubench "):
                    continue
                first, *others = line.strip().removeprefix("gpubench ").split(" | ")
                for command in [first, *others]:
                    words = shlex.split(command.replace("\\", " ").split(">")[0])
                    found.append((page.name, words))
    return found


def options_of(command: str) -> set[str]:
    """The option strings (--data, -h, ...) `gpubench COMMAND` takes."""
    sub = next(a for a in parser()._actions if a.dest == "command").choices[command]
    return {s for action in sub._actions for s in action.option_strings}


def test_every_command_and_flag_the_docs_show_exists():
    shown = shown_commands()
    assert len(shown) > 40
    top = {s for a in parser()._actions for s in a.option_strings}
    for page, words in shown:
        if words[0].startswith("--"):
            assert words[0] in top, (page, words)
            continue
        assert words[0] in COMMANDS, f"{page} shows `gpubench {' '.join(words)}`: no command {words[0]}"
        flags = {w.split("=")[0] for w in words[1:] if w.startswith("--")}
        assert flags <= options_of(words[0]), (
            f"{page}: `gpubench {' '.join(words)}` has no {flags - options_of(words[0])}"
        )


def test_every_make_target_the_docs_show_exists():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    shown = {(page.name, t) for page in PAGES for t in re.findall(r"`make ([a-z][a-z-]*)", page.read_text())}
    assert shown and not {(page, t) for page, t in shown if t not in targets}


def test_every_command_is_in_the_readmes_list_with_a_line_and_a_link():
    readme = (ROOT / "README.md").read_text()
    listed = readme.split("## Main commands")[1].split("\n## ")[0]
    items = re.split(r"\n- ", listed)
    for command in COMMANDS:
        item = next((i for i in items if re.search(rf"`gpubench {command}\b", i)), None)
        assert item, f"the README's list lacks gpubench {command}"
        links = re.findall(r"\]\((docs/[^)#]+)", item)
        assert links and all((ROOT / link).is_file() for link in links), item
        assert re.search(rf"`gpubench {command}[^`]*`: \w", " ".join(item.split())) or ", `gpubench" in item, item


def test_the_presets_run_counts_in_the_docs_are_the_planners(monkeypatch):
    monkeypatch.setattr(planner, "installed", lambda module: True)  # the docs count every backend and pipeline
    table = dict(re.findall(r"^\| `([\w-]+)` \| ([\d to]+) \|$", (ROOT / "docs/knobs.md").read_text(), re.M))
    presets = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
    assert sorted(table) == presets
    assert f"{table['quick']} runs as planned" in text(ROOT / "README.md")
    for name in presets:
        preset = load_preset(name)
        grid, _ = planner.build_grid(preset.knob_sets(), [], preset.repeat, preset.installed_only)
        probes = planner.ceiling_probes(grid) if preset.ceilings else []
        counts = planner.run_counts(grid, probes, preset.repeat_as_needed)
        assert table[name] == planner.said_runs(counts).removesuffix(" runs"), name

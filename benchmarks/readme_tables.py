"""Fill the README's measured blocks from the newest result files in ``benchmarks/results/``.

Every number in those blocks is read from a result file written by a benchmark script, and
each block names its file. Blocks (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``):

* ``stateless``: ``stateless_head_*.json`` (``benchmarks/stateless_head.py``): the stateless
  ``classify`` against the old fused LSTM, size and latency per precision;
* ``apps``: ``browser_latency_*.json`` (``benchmarks/browser_latency.py``) next to the
  native XNNPACK study time of the same file from the newest ``bench_*.json``;
* ``paper``: ``paper_model_*.json`` (``benchmarks/paper_model.py``);
* ``scale``: ``train_input_*.json``, ``cache_rss_*.json`` and ``presets_*.json``;
* ``runtimes``: ``runtime_matrix_*.json`` (``benchmarks/runtime_matrix.py``): the golden sample
  per precision on x86_64 and emulated aarch64 with each ai-edge-litert version provisioned;
* ``demo``: ``demo_time_*.json`` (``benchmarks/demo_time.py demo``: a whole demo in one run),
  else ``demo_steps_*.json`` (``record``): how long each step of the last ``make demo`` took,
  with ``train_step_*.json`` (``benchmarks/train_step.py``);
* ``predict``: ``ich-edge predict`` on the committed golden sample with the committed model
  (``android_demo_assets/``, written by ``ich-edge assets``), its timing line left out;
* ``seeds``: ``seed_spread_*.json`` (``benchmarks/seed_spread.py``): the demo's training with
  several seeds, test study AUC per label as mean, sd, min and max; with ``--ship``, what each
  seed's whole demo shipped and its latency and size over fp16.

    python benchmarks/readme_tables.py            # rewrites README.md in place
    python benchmarks/readme_tables.py --check    # exit 1 if README.md is not up to date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))  # the ich_edge of this checkout
from ich_edge.precisions import BY_NAME, DYNAMIC, FP16, FP32, INT8, QAT_INT8  # noqa: E402


def newest(prefix: str, keep=lambda result: True) -> Path | None:
    """The newest ``<prefix>_<UTC time>_<host>.json`` (names sort by time) whose result ``keep`` accepts."""
    found = sorted(RESULTS.glob(f"{prefix}_2*.json"), key=lambda p: p.name.split("_")[-2])
    found = [p for p in found if keep(json.loads(p.read_text()))]
    return found[-1] if found else None


def _p50(stats) -> float | None:
    return (stats or {}).get("p50")


def _ms(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def stateless_block() -> list[str]:
    path = newest("stateless_head")
    if path is None:
        return ["(no stateless_head result yet: run benchmarks/stateless_head.py)"]
    result = json.loads(path.read_text())
    entries = {e["precision"]: e for e in result["stateless_vs_fused"]}
    ratios = [(e.get("ratio_stateless_to_fused") or {}).get("size_bytes") for e in entries.values()]
    ratios = [r for r in ratios if r]
    loads = all(e.get("stateless", {}).get("compiled_model_loads") == "yes" for e in entries.values())
    fused_loads = any(e.get("fused", {}).get("compiled_model_loads") == "yes" for e in entries.values())
    cells = [f"{p} {_ms(e.get('stateless', {}).get('classify_ms_p50'))} vs {_ms(e.get('fused', {}).get('classify_ms_p50'))}"
             for p, e in entries.items()]
    if not ratios:
        return [f"(`benchmarks/results/{path.name}` holds no size ratios)"]
    return [f"Against the old fused LSTM in one run (`benchmarks/results/{path.name}`): files "
            f"{min(ratios):.2f}-{max(ratios):.2f}x larger (each weight is stored once; the unrolled steps add operator "
            f"tables); CompiledModel loads {'every' if loads else 'not every'} stateless file and "
            f"{'some' if fused_loads else 'no'} fused one; `classify` ms p50, stateless vs fused: {'; '.join(cells)}."]


def apps_block() -> list[str]:
    lines = [
        "- **Android:** `snippets/IchEdgeModel.kt` is compiled in CI and run on the JVM: within 1e-5 of `expected.json`.",
        "- **iOS:** `snippets/IchEdgeModel.swift` is checked against TensorFlowLiteSwift 2.17.0's public API (no Swift here).",
        "- **Browser:** `web_demo/` (LiteRT.js, offline): `bash .ci/provision-browser.sh`, "
        "`python3 -m http.server 8000 --bind 127.0.0.1`, open `/web_demo/`.",
    ]
    path = newest("browser_latency")
    if path is None:
        return lines
    result = json.loads(path.read_text())
    load = (result.get("load_average_start_end") or [[None]])[0][0]
    machine = result.get("machine", {})
    cores = machine.get("usable_cores", machine.get("cpus", "?"))  # files before the shared envelope: "cpus"
    busy = f" (measured at load {load:.1f} on {cores} cores: compare ratios only)" if load and load > 2 else ""
    slices = next((run["num_slices"] for run in result["runs"] if run.get("num_slices")), 32)  # older files: 32
    precision = (result.get("model") or {}).get("precision", "shipped")
    lines += ["", f"Per-study time of the golden sample ({slices} slices, the {precision} file; ms, median and range), "
                  f"`benchmarks/results/{path.name}`{busy}:", "",
              "| where | runtime | whole study | model stage | max abs diff vs expected.json |", "|---|---|---|---|---|"]
    for run in result["runs"]:
        study = run.get("per_study_ms") or {}
        if not study.get("median"):
            continue  # e.g. WebGPU where the browser has no adapter: the file says why
        diff = (run.get("max_abs_diff_vs_expected") or {}).get("slice")
        model = (run.get("stages_ms") or {}).get("model") or {}
        adapter = f" ({run['webgpu_adapter']}: a CPU emulation, no GPU here)" if run.get("webgpu_adapter") else ""
        if run.get("runtime") == "wasm" and run.get("threads"):  # files from before threads have neither
            adapter = f", {run['threads']} thread{'s' if run['threads'] > 1 else ''}, decoding in {run.get('decoding')}"
        lines.append(f"| headless Chromium | {run.get('runtime', run.get('requested_runtime'))}{adapter} | "
                     f"{_ms(study.get('median'))} ({_ms(study.get('min'))}-{_ms(study.get('max'))}) | {_ms(model.get('median'))} | "
                     f"{'-' if diff is None else format(diff, '.2g')} |")
    for native in result.get("native", []):
        predict, model = native.get("predict_ms") or {}, native.get("model_ms") or {}
        lines.append(f"| native `ich-edge predict` | XNNPACK, {native['threads']} thread{'s' if native['threads'] > 1 else ''} | "
                     f"{_ms(predict.get('median'))} ({_ms(predict.get('min'))}-{_ms(predict.get('max'))}) | "
                     f"{_ms(model.get('median'))} | 0 (the reference) |")
    return lines


def paper_block() -> list[str]:
    path = newest("paper_model")
    if path is None:
        return []
    result = json.loads(path.read_text())
    settings = result["settings"]
    trained = result.get("paper_training") or {}
    auc = (result["models"].get("paper", {}).get("test_study_auc") or {}).get("any")
    learned = (f"trained {trained['epochs']} epochs on {settings['studies']} synthetic studies, test study AUC any "
               f"{auc:.3f}" if trained and auc is not None else f"briefly trained on {settings['studies']} synthetic studies")
    lines = [f"The paper's model ({settings['size']} px, {learned}; XNNPACK, 2 threads; `benchmarks/results/{path.name}`):", "",
             "| model | precision | size KB | conversion parity | deployment parity | study ms p50 | x fp32 |",
             "|---|---|---|---|---|---|---|"]
    for name, model in [(n, m) for n, m in result["models"].items() if n == "paper"]:
        fp32 = _p50(model["precisions"].get(FP32, {}).get("study_latency_ms"))
        for precision, entry in model["precisions"].items():
            p50 = _p50(entry.get("study_latency_ms"))
            parity = entry.get("parity") or {}
            verdicts = [(parity.get(q) or {}).get("verdict", "-") for q in ("conversion", "deployment")]
            ratio = f"{p50 / fp32:.2f}" if p50 and fp32 else "-"
            lines.append(f"| {name} | {precision} | {entry['size_bytes'] / 1024:.0f} | {verdicts[0]} | {verdicts[1]} | "
                         f"{_ms(p50)} | {ratio} |")
    forms = [(name, form, row) for name, model in result["models"].items() for form, row in (model.get("forms") or {}).items()]
    if forms:
        lines += ["", "Both forms of each model in the same run (`encode` ends with the slice features, or with the "
                  "LSTM's input projection; study ms p50, 2 threads):", "",
                  "| model | classify takes | values per slice | fp32 | qat-int8 | qat-int8 x fp32 |", "|---|---|---|---|---|---|"]
        for name, form, row in forms:
            ratio = row.get("qat_int8_over_fp32")
            lines.append(f"| {name} | {form} | {row.get('values_per_slice')} | {_ms(row.get(f'{FP32}_study_ms'))} | "
                         f"{_ms(row.get(f'{QAT_INT8}_study_ms'))} | {'-' if ratio is None else format(ratio, '.2f')} |")
    return lines


def scale_block() -> list[str]:
    lines = []
    path = newest("train_input")
    if path is not None:
        rows = json.loads(path.read_text())["rows"]
        names = {"new_input": "input pipeline alone", "new_with_augment_on_cpu": "with augmentation on the CPU"}
        cells = [f"{label} {_ms(next((r['cpu_ms_per_window'] for r in rows if r['pipeline'] == key and r['size_px'] == 128), None))}"
                 f" / {_ms(next((r['cpu_ms_per_window'] for r in rows if r['pipeline'] == key and r['size_px'] == 256), None))}"
                 for key, label in names.items()]
        lines += [f"CPU ms per 24-slice training window at 128 / 256 px (`benchmarks/results/{path.name}`): "
                  + "; ".join(cells) + "."]
    path = newest("presets")
    if path is not None:
        bench = json.loads(path.read_text())["bench"]
        lines += ["", f"Presets, study ms p50 (XNNPACK, 2 threads; `benchmarks/results/{path.name}`):", "",
                  "| preset | fp32 | fp16 | dynamic | int8 | qat-int8 | qat-int8 x fp32 |", "|---|---|---|---|---|---|---|"]
        table: dict[str, dict[str, float]] = {}
        for row in bench["rows"]:
            if row.get("status") == "ok" and row["backend"] == "xnnpack":
                preset = "mobile" if "/mobile" in row["path"] else "demo"
                table.setdefault(preset, {})[row["variant"]] = _p50(row.get("study_latency_ms"))
        for preset, cells in table.items():
            ratio = cells.get(QAT_INT8) / cells[FP32] if cells.get(QAT_INT8) and cells.get(FP32) else None
            lines.append(f"| {preset} | " + " | ".join(_ms(cells.get(p)) for p in (FP32, FP16, DYNAMIC, INT8, QAT_INT8))
                         + f" | {_ms(ratio)} |")
    return lines


def seeds_block() -> list[str]:
    path = newest("seed_spread", keep=lambda result: len(result.get("seeds", [])) > 1)  # one seed is no spread
    if path is None:
        return ["(no seed_spread result yet: run benchmarks/seed_spread.py)"]
    result = json.loads(path.read_text())
    summary, rows = result["summary"], result["rows"]
    seeds = ", ".join(str(row["seed"]) for row in rows)
    lines = [f"One run is one draw: the demo's training with seeds {seeds} on the same data ({rows[0]['n_test_studies']} "
             f"test studies; `benchmarks/results/{path.name}`, by `benchmarks/seed_spread.py`), test study AUC:", "",
             "| label | mean | sd | min | max | baseline mean |", "|---|---|---|---|---|---|"]
    for label, s in summary["study_auc"].items():
        if not s["n"]:
            lines.append(f"| {label} | not evaluable | | | | |")
            continue
        base = summary["baseline_study_auc"].get(label, {}).get("mean")
        lines.append(f"| {label} | {s['mean']:.3f} | {s['sd']:.3f} | {s['min']:.3f} | {s['max']:.3f} | "
                     f"{'-' if base is None else f'{base:.3f}'} |")
    return lines + ship_lines(result.get("ship"), result.get("machine") or {})


def ship_lines(ship: dict | None, machine: dict) -> list[str]:
    """What each seed's whole demo shipped (``seed_spread.py --ship``), with its ratios over fp16 from the same bench run."""
    if not ship:
        return []
    features = machine.get("cpu_features") or []
    cpu = (f"{machine.get('cpu_model', 'CPU not recorded')}, {'with' if any('vnni' in f for f in features) else 'without'} VNNI"
           + (", with AMX" if "amx_int8" in features else ""))
    seeds = []
    for row in ship["rows"]:
        report = ((row.get("layer_reports") or {}).get(BY_NAME[row["shipped"]].file_name) if row.get("shipped") else None) or {}
        kept = ", ".join(g.split("/")[-1] for g in report.get("kept_float") or [])
        detail = (f"{_ms(row['latency_over_fp16'])}x fp16 latency, {_ms(row['size_over_fp16'])}x size"
                  + (f", {kept} float" if kept else ""))
        seeds.append(f"seed {row['seed']} {row['shipped']}" + ("" if row["shipped"] == FP16 else f" ({detail})"))
    return ["", f"What each seed's whole demo ships (`--ship`): {'; '.join(seeds)}. An integer file on "
                f"{ship['integer_count']} of {ship['seeds']} seeds; study latency at most 0.75x fp16 (XNNPACK, the same "
                f"bench run; {cpu}) on {ship['pass_count']}."]


def runtimes_block() -> list[str]:
    """The golden sample per precision x architecture x ai-edge-litert version (``runtime_matrix_*.json``)."""
    path = newest("runtime_matrix")
    if path is None:
        return ["(no runtime_matrix result yet: run benchmarks/runtime_matrix.py after .ci/provision-arm.sh)"]
    result = json.loads(path.read_text())
    emulator = next((r["detail"] for r in result["runtimes"] if r["emulated"]), "")
    runtimes = sorted({f"{r['arch']}/{r['litert']}" for r in result["rows"]})
    lines = [f"The golden sample on {len(runtimes)} kernel sets ({', '.join(runtimes)}; aarch64 {emulator}; "
             f"{result['models']}; `benchmarks/results/{path.name}`, by `benchmarks/runtime_matrix.py`): the largest "
             "|diff| against the sample over them (features / slice probabilities), whether every runtime's study "
             "decisions agree, and whether the first sample study lies clear of the spread measured on it, builtin "
             "kernels (no XNNPACK) included (else `ich-edge assets` tries the next study):", "",
             "| precision | features | slice p | decisions | first sample |", "|---|---|---|---|---|"]
    for precision in dict.fromkeys(row["precision"] for row in result["rows"]):
        rows = [r for r in result["rows"] if r["precision"] == precision]
        ok = [r for r in rows if r["status"] == "ok"]
        worst = {k: max((r.get("max_abs_diff") or {}).get(k, 0.0) for r in ok) if ok else None for k in ("features", "slice")}
        agree = "agree" if ok and all(r["decisions_agree"] for r in ok) else "DIFFER"
        refused = next((r.get("assets_would_refuse") for r in rows if r.get("assets_would_refuse")), None)
        spread = re.search(r"by up to ([0-9.e+-]+)", refused or "")
        verdict = "clear" if not refused else f"within the spread ({spread.group(1) if spread else '?'})"
        cells = " | ".join("-" if v is None else f"{v:.1e}" for v in worst.values())
        lines.append(f"| {precision} | {cells} | {agree} ({len(ok)}/{len(rows)} ran) | {verdict} |")
    return lines


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def _one_run(result: dict) -> bool:
    """A ``demo_time`` result of a whole demo in one run: exit 0, no step reused."""
    return result.get("exit_code") == 0 and not result.get("reused_steps")


def demo_block() -> list[str]:
    """How long the last ``make demo`` took per step and the training-step speed-up: the newest whole
    run, timed by ``benchmarks/demo_time.py demo`` (``demo_time_*.json``) or recorded from an uninterrupted
    demo's own step records (``demo_steps_*.json`` with ``one_run``), else the step times recorded across
    runs (``demo_steps_*.json``, ``record``)."""
    whole = [p for p in (newest("demo_time", _one_run), newest("demo_steps", lambda r: r.get("one_run"))) if p]
    path = max(whole, key=lambda p: p.name.split("_")[-2]) if whole else newest("demo_steps")
    if path is None:
        return ["(no demo_time or demo_steps result yet: run benchmarks/demo_time.py)"]
    result = json.loads(path.read_text())
    machine = result["machine"]
    cpu = f"{machine.get('usable_cores')} cores, {'AVX-512' if 'avx512f' in machine.get('cpu_features', []) else 'AVX2'}"
    timed = [s for s in result["steps"] if s["seconds"] is not None]
    steps = ", ".join(f"{s['step']} {_minutes(s['seconds'])}" for s in timed)
    if result.get("one_run"):
        head = (f"The last `make demo`, one uninterrupted run from a fresh folder ({cpu}; its own step records, "
                f"`benchmarks/results/{path.name}`): **{_minutes(result['wall_s'])}** in all (the goal is 15 min); ")
    elif "wall_s" in result:
        load = result["load_average_start_end"]
        head = (f"The last `make demo`, timed in one run from a fresh folder ({cpu}, load average "
                f"{load[0][0]:.1f} at the start and {load[1][0]:.1f} at the end; `benchmarks/results/{path.name}`): "
                f"**{_minutes(result['wall_s'])}** in all (the goal is 15 min); ")
    else:
        head = f"The last `make demo` ({cpu}; `benchmarks/results/{path.name}`, steps timed in separate runs): "
    lines = [head + steps + (f"; not timed: {', '.join(result['untimed_steps'])}" if result.get("untimed_steps") else "") + "."]
    step = newest("train_step")
    if step is not None:
        speed = json.loads(step.read_text())
        lines[-1] += (f" TensorFlow's oneDNN kernels, now on for every x86 CPU, make a training step "
                      f"{speed['ratio_off_over_on']:.1f}x faster on that CPU (`benchmarks/results/{step.name}`).")
    return lines


def predict_block() -> list[str]:
    """``ich-edge predict`` on the committed golden sample with the committed model, without its timing line."""
    import contextlib
    import io

    from ich_edge.cli import main as cli_main

    assets = ROOT / "android_demo_assets"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_main(["predict", "--model", str(assets / "model.tflite"), "--dicom", str(assets / "sample" / "dicom")])
    lines = [line.rstrip() for line in out.getvalue().splitlines() if line.strip() and not line.lstrip().startswith("time:")]
    return ["```", "$ ich-edge predict --model android_demo_assets/model.tflite --dicom android_demo_assets/sample/dicom",
            *lines, "```"]


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the lines between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` replaced by ``body``
    (unchanged when the markers are missing); the one place README blocks are rewritten."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        return text
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


BLOCKS = {"demo": demo_block, "predict": predict_block, "runtimes": runtimes_block, "seeds": seeds_block, "stateless": stateless_block, "apps": apps_block, "paper": paper_block, "scale": scale_block}


def render(text: str) -> str:
    """``text`` with every block replaced by its freshly rendered lines."""
    for name, make in BLOCKS.items():
        if f"<!-- {name}:start -->" in text:
            text = replace_block(text, name, "\n".join(make()))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when the README is not up to date")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = render(text)
    if args.check:
        return 0 if new == text else 1
    if new != text:
        from ich_edge.fileio import write_atomic_bytes

        write_atomic_bytes(args.readme, lambda handle: handle.write(new.encode("utf-8")))
    print(f"{args.readme}: {'updated' if new != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The envelope of every benchmark result file: one owner for what each result says about its run.

A result (``ich-edge bench`` and the scripts in ``benchmarks/``) is a JSON document that starts
with the same fields, made by :func:`envelope`:

* ``format``: the document's name and version (``ich-edge-bench/1``);
* ``created_utc``: when the envelope was made (``2026-12-07T03:15:22Z``), the run's start where
  a script makes it first;
* ``machine``: :func:`~ich_edge.runtime.bench.sysinfo.machine_info`;
* ``load_average_start_end``: 1/5/15 minute load averages when the envelope was made and when the
  run ended (:func:`finish`; :func:`write_result` calls it when the script did not), since other
  load skews timings.

:func:`write_result` writes it atomically (:mod:`ich_edge.fileio`) to
``<results_dir>/<prefix>_<created_utc compact>_<host>.json`` (:func:`result_file_name`), after
:func:`portable`: no absolute folder of the machine goes into a result file. A path under the
root (the repository, or the working folder for ``ich-edge bench``) is made relative; a path
elsewhere is cut to ``<outside>/`` and its last three parts, which still tell runs apart; any
machine folder left inside a longer text (a command line, a message) or a key is refused
(:func:`machine_paths`), since it cannot be cut safely.

Runtime tier: standard library and :mod:`ich_edge.fileio` only, no TensorFlow.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from ich_edge.errors import ConfigError
from ich_edge.fileio import write_json_atomic

#: The checkout this module runs from (``benchmarks/`` and ``ich_edge/`` side by side).
REPOSITORY = Path(__file__).resolve().parents[3]
#: Where the scripts of ``benchmarks/`` write their results in a checkout.
RESULTS_DIR = REPOSITORY / "benchmarks" / "results"
#: What a path outside the root becomes (followed by its last three parts).
OUTSIDE = "<outside>/"
#: Load average key: ``[start, end]``, each ``[1 min, 5 min, 15 min]`` or None.
LOAD_KEY = "load_average_start_end"


def utc_stamp() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def envelope(format_name: str, machine: dict | None = None, **fields) -> dict:
    """A new result document: ``format``, ``created_utc``, ``machine``, the load average now, ``fields``.

    ``machine`` defaults to :func:`~ich_edge.runtime.bench.sysinfo.machine_info` (pass another
    run's when the result re-reports it). The end load average is filled by :func:`finish`.
    """
    if not format_name:
        raise ConfigError("envelope needs a format name such as 'ich-edge-bench/1'")
    if machine is None:
        from ich_edge.runtime.bench.sysinfo import machine_info

        machine = machine_info()
    return {"format": format_name, "created_utc": utc_stamp(), "machine": machine, LOAD_KEY: [load_average(), None], **fields}


def finish(result: dict) -> dict:
    """Record the load average at the end of the run (once); returns ``result``."""
    load = result.get(LOAD_KEY)
    if isinstance(load, list) and len(load) == 2 and load[1] is None:
        load[1] = load_average()
    return result


def result_file_name(result: dict, prefix: str = "bench", host: str | None = None) -> str:
    """``<prefix>_<created_utc compact>_<host>.json``: one file per run, sortable by time.

    ``host`` defaults to the result's ``machine.host`` (a tag such as ``vm`` may replace it).
    """
    stamp = result["created_utc"].replace("-", "").replace(":", "")
    host = host or (result.get("machine") or {}).get("host")
    if not host:
        raise ConfigError("the result has no machine.host; make it with envelope() or pass host=")
    return f"{prefix}_{stamp}_{host}.json"


def _boundary(folder: str) -> re.Pattern:
    """``folder`` as a path inside text: not the tail of a longer path or of ``<outside>/``."""
    return re.compile(r"(?<![\w.~>/-])" + re.escape(folder.rstrip("/")) + r"(?=/|$|[\s\"'`),;:|\]])")


def _named_text(text: str, named: tuple) -> str:
    """``text`` with each declared folder (absolute path, name) replaced by its name."""
    for folder, name in named:
        if folder in text:
            text = _boundary(folder).sub(lambda _: name, text)
    return text


def _portable_text(text: str, base: str, named: tuple = ()) -> str:
    text = _named_text(text, named)
    if text.startswith("/") and "\n" not in text and len(text) < 4096:  # the whole string is a path
        absolute = os.path.abspath(text)
        if absolute == base or absolute.startswith(base + os.sep):
            return os.path.relpath(absolute, base)
        return OUTSIDE + "/".join(absolute.split(os.sep)[-3:])  # the last folders still tell runs apart
    if base != "/" and base in text:  # inside a longer text (a command line): relative as well
        inside = re.compile(r"(?<![\w.~>/-])" + re.escape(base) + r"(?:/|(?=$|[\s\"'`),;:|\]]))")
        return inside.sub(lambda match: "" if match.group(0).endswith("/") else ".", text)
    return text


def _named(named: dict | None) -> tuple:
    pairs = {os.path.abspath(folder): name for folder, name in (named or {}).items()}
    return tuple(sorted(pairs.items(), key=lambda pair: -len(pair[0])))  # the deepest folder first


def portable(value, root: str | Path | None = None, named: dict | None = None):
    """``value`` with absolute paths made relative to ``root`` (the repository by default), or cut
    to ``<outside>/`` and their last three parts when they lie elsewhere; a copy, keys included.

    ``named`` maps folders the script made (a scratch folder) to a name that replaces them
    anywhere, inside longer texts too: ``{work: "<work>"}``.
    """
    base, pairs = os.path.abspath(root or REPOSITORY), named if isinstance(named, tuple) else _named(named)
    if isinstance(value, os.PathLike):  # a Path in a result (argparse's vars()) is its text
        value = os.fspath(value)
    if isinstance(value, dict):
        return {portable(k, base, pairs): portable(v, base, pairs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, base, pairs) for v in value]
    if isinstance(value, str):
        return _portable_text(value, base, pairs)
    return value


def _machine_folders(root: str | Path | None) -> list[str]:
    """The repository (or ``root``), $HOME and the temporary folder: absolute folders of this machine."""
    folders = {os.path.abspath(root or REPOSITORY), os.path.expanduser("~"), "/tmp", tempfile.gettempdir()}
    return sorted(f for f in folders if f and f != "/" and f.startswith("/"))


def machine_paths(value, root: str | Path | None = None, where: str = "$") -> list[str]:
    """``"<key path>: <text>"`` for every string (key or value) in ``value`` naming a machine folder."""
    if isinstance(value, dict):
        found = [f"{where} key: {k}" for k in value if machine_paths(k, root)]
        return found + [hit for k, v in value.items() for hit in machine_paths(v, root, f"{where}.{k}")]
    if isinstance(value, (list, tuple)):
        return [hit for i, v in enumerate(value) for hit in machine_paths(v, root, f"{where}[{i}]")]
    if isinstance(value, str) and any(_boundary(f).search(value) for f in _machine_folders(root)):
        return [f"{where}: {value[:120]}"]
    return []


def check_portable(result: dict, root: str | Path | None = None, named: dict | None = None) -> dict:
    """:func:`portable` ``result``, refusing what still names a folder of this machine; the copy."""
    clean = portable(result, root, named)
    found = machine_paths(clean, root)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ConfigError(f"the result holds an absolute path of this machine at {found[0]}{more}; "
                          "store it relative to the repository, name its folder (named=) or leave it out")
    return clean


def write_result(result: dict, prefix: str, results_dir: str | Path | None = None,
                 root: str | Path | None = None, host: str | None = None, named: dict | None = None) -> Path:
    """Write ``result`` to ``results_dir/<prefix>_<UTC time>_<host>.json`` atomically; the path.

    ``results_dir`` defaults to :data:`RESULTS_DIR`, ``root`` (what paths are made relative to)
    to the repository; ``named``: see :func:`portable`. :func:`finish` is called first; the
    caller's dict keeps its paths. Raises ConfigError when a machine path would remain
    (:func:`check_portable`).
    """
    clean = check_portable(finish(result), root, named)
    path = Path(results_dir or RESULTS_DIR) / result_file_name(clean, prefix, host)
    # Two runs started in the same second: the later one gets "-2", "-3" after the time (it
    # still sorts after the first) instead of replacing it.
    stem, count = path.name.removesuffix(".json").split("_"), 2
    while path.exists():
        path = path.with_name("_".join([*stem[:-2], f"{stem[-2]}-{count}", stem[-1]]) + ".json")
        count += 1
    write_json_atomic(path, clean)
    return path


def write_results(result: dict, prefix: str, results_dir: str | Path | None, json_path: str | Path | None = None,
                  root: str | Path | None = None, host: str | None = None, named: dict | None = None) -> list[Path]:
    """:func:`write_result` into ``results_dir`` and ``result`` as it is to ``json_path`` (the
    user's own file, paths as given), each only when given; the paths written."""
    written = [] if results_dir is None else [write_result(result, prefix, results_dir, root, host, named)]
    if json_path is not None:
        write_json_atomic(json_path, finish(result))
        written.append(Path(json_path))
    return written


def shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside, for a ``wrote ...`` line."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPOSITORY)) if resolved.is_relative_to(REPOSITORY) else str(path)

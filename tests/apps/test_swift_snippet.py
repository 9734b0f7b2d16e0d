"""The Swift snippet uses only TensorFlowLiteSwift 2.17.0's real public API (no Swift compiler here).

``apps/swift/tensorflowliteswift_2.17.0_api.txt`` lists that version's public declarations,
each with the source file and line it comes from (``apps/swift/extract_api.py`` wrote it from
the pod's ``tensorflow/lite/swift/Sources/*.swift``). This test reads the snippet (the committed
one and one rendered from the template), works out which variables hold TensorFlowLiteSwift
types (``Interpreter``, ``SignatureRunner``, ``Tensor``, ...) from their declarations and from
the return types in the list, and checks every member used on them (name, argument labels,
``var`` when assigned) and every constructor call against the list. Any other member must be
declared in the snippet itself or be one of the few Swift/Foundation members named in
``SWIFT_MEMBERS``; anything else fails, so a call the checker cannot place fails too.

What it does not do: type-check arguments, or compile anything.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
API_FILE = REPO / "apps" / "swift" / "tensorflowliteswift_2.17.0_api.txt"
COMMITTED = REPO / "android_demo_assets" / "snippets" / "IchEdgeModel.swift"

#: Swift standard library / Foundation members the snippet may use (on arrays, numbers, Data,
#: ranges, and implicit members such as `.toNearestOrEven`). Add one here only when it is not
#: a TensorFlowLiteSwift member.
SWIFT_MEMBERS = frozenset({
    "append", "copyBytes", "count", "down", "flatMap", "last", "map", "max", "min", "rounded", "self",
    "size", "sorted", "toNearestOrEven", "up", "withUnsafeBufferPointer", "withUnsafeMutableBytes",
    # the input checks (IchEdgeChecks, HuCounts): arrays, strings and Double
    "compactMap", "components", "contains", "filter", "firstIndex", "infinity", "isEmpty", "isFinite", "joined",
    "pi", "prefix", "replacingOccurrences", "squareRoot", "unicodeScalars", "uppercased",
})

#: What the snippet must be seen to use, so the checker cannot pass by resolving nothing.
REQUIRED = {
    "Interpreter.Options.init()", "Interpreter.Options.threadCount=", "Interpreter.Options.isXNNPackEnabled=",
    "Interpreter.init(modelPath:options:)", "Interpreter.signatureRunner(with:)",
    "SignatureRunner.invoke(with:)", "SignatureRunner.output(named:)", "Tensor.data",
}


@dataclass(frozen=True)
class Member:
    owner: str
    kind: str  # init, func, var, let, case, type, static
    name: str
    params: tuple[tuple[str, bool], ...] | None  # (label, has default); None for properties
    returns: str | None
    source: str


@dataclass
class Api:
    members: list[Member] = field(default_factory=list)

    @property
    def types(self) -> set[str]:
        found = {m.name if m.owner == "-" else f"{m.owner}.{m.name}" for m in self.members if m.kind == "type"}
        return found | {m.name for m in self.members if m.kind == "typealias"}

    def lookup(self, owner: str, name: str) -> list[Member]:
        return [m for m in self.members if m.owner == owner and m.name == name]


def _params(text: str) -> tuple[tuple[str, bool], ...]:
    out = []
    for part in _split_top(text, ","):
        part = part.strip()
        if not part:
            continue
        names = part.split(":", 1)[0].split()
        out.append((names[0], "=" in part))
    return tuple(out)


def load_api(path: Path = API_FILE) -> Api:
    """The list file as members; the return type of a property is its declared type."""
    api = Api()
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        owner, decl, source = (part.strip() for part in line.split("|"))
        if m := re.match(r"case (\w+)$", decl):
            api.members.append(Member(owner, "case", m.group(1), None, owner, source))
        elif m := re.match(r"public (?:final )?(?:class|struct|enum|protocol) (\w+)", decl):
            api.members.append(Member(owner, "type", m.group(1), None, None, source))
        elif m := re.match(r"public typealias (\w+) = ([\w.]+)", decl):
            api.members.append(Member(owner, "typealias", m.group(1), None, m.group(2), source))
        elif m := re.match(r"public (?:convenience )?init\((.*)\)", decl):
            api.members.append(Member(owner, "init", "init", _params(m.group(1)), owner, source))
        elif m := re.match(r"public func (\w+)\((.*?)\)(?: throws)?(?: -> ([\w.]+))?$", decl):
            api.members.append(Member(owner, "func", m.group(1), _params(m.group(2)), m.group(3), source))
        elif m := re.match(r"public (static )?(let|var) (\w+): ([\w.\[\]:? ]+?)\??(?: = .*)?$", decl):
            kind = "static" if m.group(1) else m.group(2)
            api.members.append(Member(owner, kind, m.group(3), None, m.group(4).strip(), source))
        else:
            raise AssertionError(f"{path.name}: cannot read {line!r}")
    return api


# --- a small reader of the snippet ------------------------------------------------------------


def _strip_code(text: str) -> str:
    """Comments and string literals blanked out (same length, so offsets stay valid)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    text = re.sub(r"/\*.*?\*/", blank, text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', text)
    return re.sub(r"//[^\n]*", blank, text)


_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in _PAIRS:
            depth += 1
        elif ch in _PAIRS.values():
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def _match_forward(text: str, i: int) -> int:
    """Index of the bracket closing the one at ``i``."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] in _PAIRS:
            depth += 1
        elif text[j] in _PAIRS.values():
            depth -= 1
            if depth == 0:
                return j
    raise AssertionError(f"unbalanced bracket at {i}")


def _match_backward(text: str, i: int) -> int:
    depth = 0
    for j in range(i, -1, -1):
        if text[j] in _PAIRS.values():
            depth += 1
        elif text[j] in _PAIRS:
            depth -= 1
            if depth == 0:
                return j
    raise AssertionError(f"unbalanced bracket at {i}")


def _is_ident(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _receiver_start(text: str, dot: int) -> int:
    """Where the receiver of the member access at ``text[dot] == '.'`` begins."""
    j = dot - 1
    while True:
        while j >= 0 and text[j] in " \t?!":
            j -= 1
        if j >= 0 and text[j] in ")]":
            j = _match_backward(text, j) - 1
            end = j
            while j >= 0 and _is_ident(text[j]):
                j -= 1
            if j == end:  # a parenthesised expression or a literal: stop there
                return j + 1
        elif j >= 0 and _is_ident(text[j]):
            while j >= 0 and _is_ident(text[j]):
                j -= 1
        else:
            return j + 1
        if j >= 0 and text[j] == ".":
            j -= 1
            continue
        return j + 1


def _call_labels(args: str) -> tuple[str, ...]:
    labels = []
    for arg in _split_top(args, ","):
        if not arg.strip():
            continue
        m = re.match(r"\s*(\w+)\s*:(?!:)", arg)
        labels.append(m.group(1) if m else "_")
    return tuple(labels)


def _labels_fit(params: tuple[tuple[str, bool], ...], labels: tuple[str, ...]) -> bool:
    i = 0
    for label, has_default in params:
        if i < len(labels) and labels[i] == label:
            i += 1
        elif not has_default:
            return False
    return i == len(labels)


def _signature(member: str, labels: tuple[str, ...]) -> str:
    return f"{member}({''.join(label + ':' for label in labels)})"


class SnippetChecker:
    """Resolves TensorFlowLiteSwift receivers in one Swift file and checks what is used on them."""

    def __init__(self, source: str, api: Api):
        self.api, self.code = api, _strip_code(source)
        self.types = api.types
        self.aliases = {m.name: m.returns for m in api.members if m.kind == "typealias"}
        self.declared = set(re.findall(r"\b(?:func|let|var|case|class|struct|enum)\s+(\w+)", self.code))
        self.declared |= set(re.findall(r"\b(?:let|var)\s*\(?\s*(\w+)", self.code))
        self.declared |= {n for params in re.findall(r"\bfunc\s+\w+\s*\(([^)]*)\)", self.code)
                          for n in re.findall(r"(\w+)\s*:", params)}
        self.symbols: dict[str, str | None] = {}
        self.used: set[str] = set()
        self.problems: list[str] = []

    def _type_name(self, name: str) -> str | None:
        name = self.aliases.get(name, name).rstrip("?!")
        return name if name in self.types else None

    def _owner_type(self, owner: str, name: str) -> str | None:
        """``name`` as written inside ``owner`` (``Options`` in Interpreter means Interpreter.Options)."""
        for candidate in (f"{owner}.{name}", name):
            if self._type_name(candidate):
                return self._type_name(candidate)
        return None

    def _segment(self, seg: str) -> tuple[str, str | None]:
        seg = seg.strip()
        m = re.match(r"(?:try[?!]?\s+)?([\w$]+)\s*(\(.*\))?\s*[?!]?$", seg, re.S)
        if not m:
            return "", None
        return m.group(1), (m.group(2)[1:-1] if m.group(2) else None)

    def resolve(self, expr: str) -> tuple[str, str] | None:
        """("instance" | "type", TensorFlowLiteSwift type) of an expression, or None."""
        segments = _split_top(expr.strip(), ".")
        name, args = self._segment(segments[0])
        if name in self.symbols:
            current = ("instance", self.symbols[name]) if self.symbols[name] else None
        elif self._type_name(name):
            current = ("instance" if args is not None else "type", self._type_name(name))
        else:
            return None
        for seg in segments[1:]:
            name, args = self._segment(seg)
            if current is None or not name:
                return None
            kind, owner = current
            nested = self._type_name(f"{owner}.{name}")
            if kind == "type" and nested:
                current = ("instance" if args is not None else "type", nested)
                continue
            found = [m for m in self.api.lookup(owner, name) if (m.kind in ("static", "case", "init")) == (kind == "type")]
            if not found or not found[0].returns:
                return None
            current = ("instance", self._owner_type(owner, found[0].returns))
            if current[1] is None:
                return None
        return current

    def _bind(self) -> None:
        """Variables and properties holding TensorFlowLiteSwift values (None: known, not one)."""
        for name, annotated in re.findall(r"\b(?:let|var)\s+(\w+)\s*:\s*([\w.]+)", self.code):
            self.symbols.setdefault(name, self._type_name(annotated))
        for m in re.finditer(r"\b(?:let|var)\s+(\w+)\s*=\s*", self.code):
            end = self.code.find("\n", m.end())
            resolved = self.resolve(self.code[m.end():end])
            if resolved and resolved[0] == "instance":
                self.symbols[m.group(1)] = resolved[1]
            else:
                self.symbols.setdefault(m.group(1), None)

    def _check_member(self, owner_kind: str, owner: str, name: str, args: str | None, assigned: bool) -> None:
        candidates = [m for m in self.api.lookup(owner, name)]
        if owner_kind == "type" and self._type_name(f"{owner}.{name}"):
            if args is not None:
                self._check_init(f"{owner}.{name}", args)
            return
        if name == "init" and args is not None:
            self._check_init(owner, args)
            return
        if not candidates:
            self.problems.append(f"{owner}.{name}: not in TensorFlowLiteSwift 2.17.0's public API ({API_FILE.name})")
            return
        if args is not None:
            labels = _call_labels(args)
            calls = [m for m in candidates if m.params is not None and _labels_fit(m.params, labels)]
            if not calls:
                have = ", ".join(f"{m.name}({''.join(p + ':' for p, _ in m.params or ())})" for m in candidates)
                self.problems.append(f"{owner}.{_signature(name, labels)}: no such overload (2.17.0 has {have})")
                return
            self.used.add(f"{owner}.{_signature(name, labels)}")
        elif assigned:
            if candidates[0].kind != "var":
                self.problems.append(f"{owner}.{name} is `{candidates[0].kind}` in 2.17.0: it cannot be assigned")
                return
            self.used.add(f"{owner}.{name}=")
        else:
            self.used.add(f"{owner}.{name}")

    def _check_init(self, owner: str, args: str) -> None:
        labels = _call_labels(args)
        inits = [m for m in self.api.lookup(owner, "init")]
        if not any(_labels_fit(m.params, labels) for m in inits):
            self.problems.append(f"{owner}.{_signature('init', labels)}: no such public initializer in 2.17.0")
        else:
            self.used.add(f"{owner}.{_signature('init', labels)}")

    def check(self) -> "SnippetChecker":
        self._bind()
        code = self.code
        # Constructor calls: a TensorFlowLiteSwift type name (not after a dot) followed by `(`.
        for m in re.finditer(r"(?<![.\w])([A-Z]\w*(?:\.[A-Z]\w*)*)\s*\(", code):
            owner = self._type_name(m.group(1))
            if owner:
                self._check_init(owner, code[m.end():_match_forward(code, m.end() - 1)])
        # Member accesses: `.name` not inside a number.
        for m in re.finditer(r"\.\s*([A-Za-z_]\w*)", code):
            dot, name = m.start(), m.group(1)
            if dot > 0 and code[dot - 1].isdigit() and name[0].isdigit():
                continue
            after = code[m.end():]
            args = None
            if after.startswith("("):
                args = after[1:_match_forward(after, 0)]
            assigned = bool(re.match(r"\s*=(?!=)", after))
            start = _receiver_start(code, dot)
            receiver = code[start:dot].strip()
            resolved = self.resolve(receiver) if receiver else None
            if resolved:
                self._check_member(resolved[0], resolved[1], name, args, assigned)
            elif self._type_name(f"{receiver}.{name}") if receiver else False:
                continue  # a nested type named from its parent (Interpreter.Options): checked as a call above
            elif name not in self.declared and name not in SWIFT_MEMBERS:
                self.problems.append(
                    f"{receiver or '<implicit>'}.{name}: not declared in the snippet, not a TensorFlowLiteSwift "
                    f"2.17.0 member on a receiver the checker could place, not in SWIFT_MEMBERS")
        return self


def _manifest() -> dict:
    """The committed manifest.json, with this ich-edge's ``input_checks`` (also when its own predate
    them or one of their rules)."""
    from ich_edge.assets.manifest import input_checks

    manifest = json.loads((REPO / "android_demo_assets" / "manifest.json").read_text())
    manifest["input_checks"] = input_checks()
    return manifest


def _render_fresh() -> str:
    from ich_edge.assets.build import render, snippet_placeholders

    return render("IchEdgeModel.swift.in", snippet_placeholders(_manifest()))


@pytest.fixture(scope="module")
def api() -> Api:
    return load_api()


@pytest.mark.parametrize("which", ["committed", "template"])
def test_swift_snippet_uses_only_tensorflowliteswift_2_17_0_api(api, which):
    source = COMMITTED.read_text() if which == "committed" else _render_fresh()
    checker = SnippetChecker(source, api).check()
    assert checker.problems == []
    assert REQUIRED <= checker.used, f"the checker did not see {sorted(REQUIRED - checker.used)}"


MUTATIONS = {
    "reset": ("        try classifyRunner.invoke(with:", "        try interpreter.resetVariableTensors()\n"
              "        try classifyRunner.invoke(with:", "Interpreter.resetVariableTensors"),
    "wrong label": ("try encodeRunner.invoke(with:", "try encodeRunner.invoke(inputs:", "SignatureRunner.invoke(inputs:)"),
    "wrong property": ("options.isXNNPackEnabled = true", "options.useXNNPack = true", "Interpreter.Options.useXNNPack"),
    "let assigned": ("let output = try encodeRunner.output(named: m.encodeOutput)\n",
                     "var output = try encodeRunner.output(named: m.encodeOutput)\n        output.name = \"x\"\n",
                     "Tensor.name is `let`"),
    "internal init": ("encodeRunner = try interpreter.signatureRunner(with: IchEdgeManifest.encodeSignature)",
                      "encodeRunner = try SignatureRunner(interpreter: interpreter, signatureKey: \"encode\")",
                      "SignatureRunner.init(interpreter:signatureKey:)"),
    "no int8": ("let output = try encodeRunner.output(named: m.encodeOutput)\n",
                "let output = try encodeRunner.output(named: m.encodeOutput)\n"
                "        let isInt8 = output.dataType == Tensor.DataType.int8\n", "Tensor.DataType.int8"),
    "unknown call": ("let output = try classifyRunner.output(named: m.classifyOutput)\n",
                     "let output = try classifyRunner.output(named: m.classifyOutput)\n        classifyRunner.reset()\n",
                     "SignatureRunner.reset"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_member_outside_the_api_fails(api, mutation):
    old, new, expected = MUTATIONS[mutation]
    source = COMMITTED.read_text()
    assert old in source
    checker = SnippetChecker(source.replace(old, new, 1), api).check()
    assert any(expected in problem for problem in checker.problems), checker.problems


def test_api_list_comes_from_the_2_17_0_sources(api):
    text = API_FILE.read_text()
    assert text.startswith("# TensorFlowLiteSwift 2.17.0: public API")
    assert all(re.fullmatch(r"tensorflow/lite/swift/Sources/\w+\.swift:\d+", m.source) for m in api.members)
    assert {"Interpreter", "SignatureRunner", "Tensor", "Interpreter.Options", "Tensor.DataType"} <= api.types
    assert api.lookup("SignatureRunner", "invoke") and api.lookup("Interpreter.Options", "isXNNPackEnabled")
    assert not api.lookup("Interpreter", "resetVariableTensors")
    assert not api.lookup("Tensor.DataType", "int8")  # 2.17.0 cannot read int8 tensors


def test_swift_input_check_constants_agree_with_the_manifest():
    """Every input-check constant of the rendered snippet is the manifest's number; the checks are applied."""
    from ich_edge.assets.build import input_check_values

    manifest = _manifest()
    source = _render_fresh()
    checks = manifest["input_checks"]
    want = {
        "maxOrientationDiffDeg": [checks["orientation"]["max_orientation_diff_deg"]],
        "maxTiltDeg": [checks["series"]["max_tilt_deg"]], "maxAxisTurnDeg": [checks["series"]["max_axis_turn_deg"]],
        "axialOrientation": checks["series"]["axial_orientation"],
        "paddingForbiddenRangeHu": checks["pixel_module"]["padding_forbidden_range_hu"],
        "minHeadExtentMm": [checks["coverage"]["min_head_extent_mm"]], "gapFactor": [checks["coverage"]["gap_factor"]],
        "maxSliceSpacingMm": [checks["coverage"]["max_slice_spacing_mm"]],
        "minSliceMm": [checks["series"]["min_slice_mm"]],
        "fieldOfViewMmRange": checks["series"]["field_of_view_mm_range"],
    }
    for key, value in checks["hu"].items():
        numbers = value if isinstance(value, list) else [value]
        if numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            head, *rest = key.split("_")
            want[head + "".join(word.capitalize() for word in rest)] = value if isinstance(value, list) else [value]
    # + dropLocalizers, sendInstead, dropContrast, noContrastWords, contrastInstead
    assert len(want) + 5 == len(input_check_values(manifest))
    assert f'static let sendInstead = "{checks["series"]["send_instead"]}"' in source
    assert f'static let contrastInstead = "{checks["series"]["contrast_instead"]}"' in source
    assert f"static let dropContrast = {str(checks['series']['drop_contrast']).lower()}\n" in source
    words = re.search(r"^\s*static let noContrastWords: \[String\] = (\[.*\])$", source, re.M)
    assert words and json.loads(words.group(1)) == checks["series"]["no_contrast_words"]
    rules = source[source.index("static func seriesProblem("):]  # rule (2b) where ich-edge checks it: after (2), before (3)
    steps = ["several patients in one series", "namesContrastAgent(", "not axial: "]
    assert [rules.index(step) for step in steps] == sorted(rules.index(step) for step in steps)
    for name, values in want.items():
        found = re.search(rf"^\s*static let {name}(?:: \[Double\])? = \[?([^\]\n/]*)", source, re.M)
        assert found, name
        assert [float(v) for v in found.group(1).split(",")] == [float(v) for v in values], name
    flag = str(checks["series"]["drop_localizers"]).lower()
    assert re.search(rf"static let dropLocalizers = {flag}\b", source)
    # predict runs the checks, in input_checks.order, and never shows a probability it must not
    body = source[source.index("func predict(_ slices: [CtSlice])"):]
    order = ["keepSeriesOrientation(", "unreadableReasons(", "counts.problem()", "predictSeries(", "coverageReasons("]
    assert [body.index(step) for step in order] == sorted(body.index(step) for step in order)
    assert "sliceProbabilities: nil, studyProbabilities: nil" in source
    assert "slice.rescaleSlope + slice.rescaleIntercept" not in source  # no HU without a checked rescale

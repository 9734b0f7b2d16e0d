"""Nothing identifying leaves the machine by accident (ich_edge.dicom.privacy).

A series whose headers carry a patient name, ID, birth date and accession number, and
malformed (0020,0013) Instance Number values that hold the name and the ID (pydicom warns
about them, quoting the value), goes through inspect, prepare and predict (JSON, text and
--png). Every output is searched for the identifiers: stdout, stderr, and every file
written (cache, problem reports, PNGs, with their compressed streams inflated).
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataelem import DataElement

from ich_edge.dicom.privacy import mask_quoted, warning_notes
from ich_edge.dicom.write import SliceGeometry, build_ct_dataset, write_dataset_atomic

NAME, PATIENT_ID, BIRTH_DATE, ACCESSION = "Doe^Jane", "MRN20240917", "19800101", "ACC7734521"
#: Each identifier and its parts (a name can show up as "Doe" or "Jane").
SECRETS = ("Doe", "Jane", PATIENT_ID, BIRTH_DATE, ACCESSION)


def _tiny_model(path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("tiny_app_model", Path(__file__).parent / "tiny_app_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_bytes(module.tiny_model_bytes(size_px=16, window=4, stride=2))
    return path


def _malformed_is(value: str) -> DataElement:
    """An (0020,0013) IS element holding ``value`` as is (pydicom warns when it reads it)."""
    element = DataElement(0x00200013, "LO", value)
    element.VR = "IS"
    return element


def write_identified_series(folder: Path, num_slices: int = 8) -> Path:
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:32, :32]
    hu = np.where(np.hypot(yy - 15.5, xx - 15.5) < 13, 30.0, -1000.0)
    for k in range(num_slices):
        ds = build_ct_dataset(
            hu,
            sop_instance_uid=f"1.2.826.0.1.3680043.8.498.9{k}",
            series_uid="1.2.826.0.1.3680043.8.498.77",
            study_uid="1.2.826.0.1.3680043.8.498.7",
            geometry=SliceGeometry(position_mm=(0.0, 0.0, 5.0 * k)),
            instance_number=k + 1,
        )
        ds.PatientName, ds.PatientID = NAME, PATIENT_ID
        ds.PatientBirthDate, ds.AccessionNumber = BIRTH_DATE, ACCESSION
        ds.add(_malformed_is(NAME if k % 2 else PATIENT_ID + " "))  # invalid IS values: pydicom warns
        write_dataset_atomic(ds, folder / f"slice_{k}.dcm")
    return folder


def _texts_of_file(path: Path) -> list[bytes]:
    """The bytes of a file and of every compressed stream inside it (PNG chunks, npz members)."""
    data = path.read_bytes()
    texts = [data]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        pos, idat = 8, b""
        while pos < len(data):
            length = int.from_bytes(data[pos : pos + 4], "big")
            kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
            if kind == b"IDAT":
                idat += body
            elif kind in (b"zTXt", b"iTXt") and b"\0" in body:
                key, rest = body.split(b"\0", 1)
                texts.append(key)
                try:
                    texts.append(zlib.decompress(rest[1:] if kind == b"zTXt" else rest.split(b"\0", 2)[-1]))
                except zlib.error:
                    texts.append(rest)
            pos += 12 + length
        texts.append(zlib.decompress(idat))
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            texts += [archive.read(name) for name in archive.namelist()]
    return texts


def _leaks(text: str | bytes) -> list[str]:
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return [secret for secret in SECRETS if secret.encode() in raw]


def test_the_helper_masks_quoted_values():
    assert mask_quoted("Invalid value for VR IS: 'Doe^Jane'") == "Invalid value for VR IS: '...'"
    assert mask_quoted('value "O\'Brien^Pat" and \'it\\\'s\' here') == "value '...' and '...' here"
    assert mask_quoted("b'MRN1' / 'x'") == "b'...' / '...'"
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for value in ("'Doe^Jane'", "'Roe^Richard'"):
            warnings.warn(f"Invalid value for VR PN: {value}")
    assert warning_notes(caught) == ["pydicom warned 2x: Invalid value for VR PN: '...'"]


def test_no_identifier_reaches_any_output(tmp_path):
    pytest.importorskip("matplotlib")
    series = write_identified_series(tmp_path / "in")
    assert any(_leaks(p.read_bytes()) for p in series.iterdir())  # the input does carry them
    model = _tiny_model(tmp_path / "tiny.tflite")
    out = tmp_path / "out"
    runs = {
        "inspect": ["inspect", "--dicom", str(series)],
        "inspect --json": ["inspect", "--dicom", str(series), "--json"],
        "prepare": ["prepare", "--dicom", str(series), "--out", str(out / "cache"), "--input-size-px", "16", "--workers", "1"],
        "predict --json --png": ["predict", "--model", str(model), "--dicom", str(series), "--json", "--png", str(out / "png")],
        "predict": ["predict", "--model", str(model), "--dicom", str(series)],
    }
    warned = 0
    for name, argv in runs.items():
        # A fresh interpreter per verb, as a user runs it: in this process pytest would
        # record the warnings that Python prints, and a leak there would go unseen.
        done = subprocess.run([sys.executable, "-m", "ich_edge", *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (name, done.stderr)
        warned += "Invalid value for VR IS: '...'" in done.stdout + done.stderr
        assert not _leaks(done.stdout), (name, _leaks(done.stdout), done.stdout[-2000:])
        assert not _leaks(done.stderr), (name, _leaks(done.stderr), done.stderr[-2000:])
    assert warned >= 3  # the malformed values were met and reported, masked
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in written) and any("cache" in p.parts for p in written)
    for path in written:
        for text in _texts_of_file(path):
            assert not _leaks(text), (path, _leaks(text))


def test_pydicom_warnings_printed_by_python_are_masked_in_every_verb(tmp_path):
    """Verbs that do not gather warnings themselves still print them masked (ich_edge.cli.main).

    Run in a fresh interpreter: pytest records warnings itself, so they would never print here.
    """
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import logging, sys, warnings, click
        from ich_edge.cli import COMMANDS, main

        @click.command()
        def command():
            warnings.warn("Invalid value for VR IS: 'Doe^Jane'", UserWarning)
            logging.getLogger("pydicom").warning("Invalid value for VR PN: 'Doe^Jane'")

        COMMANDS["noisy"] = ("__main__", "test only")
        logging.basicConfig()  # an app that shows log records: pydicom's must be masked too
        sys.exit(main(["noisy"]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "UserWarning: Invalid value for VR IS: '...'" in done.stderr
    assert "Invalid value for VR PN: '...'" in done.stderr
    assert not _leaks(done.stderr) and not _leaks(done.stdout), done.stderr

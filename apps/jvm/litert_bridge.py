"""Answers the JVM test double's ``Interpreter.runSignature`` calls with ai-edge-litert.

Started by ``apps/jvm/double/org/tensorflow/lite/Interpreter.java`` as::

    python apps/jvm/litert_bridge.py MODEL.tflite [--threads N] [--no-xnnpack] [--perturb SIG:OUT:INDEX:DELTA]

Imports only numpy and ai-edge-litert. The protocol on stdin/stdout, one exchange per call:

* start: the bridge writes ``{"ready": true, "signatures": [...]}`` and a newline (or
  ``{"error": ...}`` and exits 3);
* request: ``{"signature": S, "inputs": [[name, nbytes], ...], "outputs": [name, ...]}``, a
  newline, then the raw input bytes (native byte order, in the order listed);
* reply: ``{"outputs": [[name, nbytes], ...]}``, a newline, then the raw output bytes; or
  ``{"error": message}`` and a newline, after which the bridge keeps serving.

Every input must have exactly the byte size of its tensor (as LiteRT's Java API requires of a
ByteBuffer). ``--perturb classify:probabilities:0:2e-5`` adds 2e-5 to element 0 of that
output of every call (one quantization step for an integer output): the negative control of
tests/apps/test_kotlin_snippet.py. The bridge exits when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def _reply(stdout, header: dict, payload: bytes = b"") -> None:
    stdout.write(json.dumps(header).encode() + b"\n" + payload)
    stdout.flush()


def _perturbed(signature: str, name: str, value: np.ndarray, spec: tuple | None) -> np.ndarray:
    if spec is None or (signature, name) != spec[:2]:
        return value
    value = np.array(value, copy=True)
    flat = value.reshape(-1)
    step = spec[3] if np.issubdtype(flat.dtype, np.floating) else 1
    flat[spec[2]] = flat[spec[2]] + flat.dtype.type(step)
    return value


def _run(runners: dict, header: dict, stdin, spec: tuple | None) -> tuple[dict, bytes]:
    signature = header["signature"]
    sizes = [(name, int(nbytes)) for name, nbytes in header["inputs"]]
    raw = {name: stdin.read(nbytes) for name, nbytes in sizes}  # consume the payload first
    if signature not in runners:
        raise ValueError(f"no signature {signature!r}; the model has {sorted(runners)}")
    runner = runners[signature]
    details = runner.get_input_details()
    feed = {}
    for name, data in raw.items():
        if name not in details:
            raise ValueError(f"signature {signature!r} has no input {name!r}; it has {sorted(details)}")
        detail = details[name]
        dtype = np.dtype(detail["dtype"])
        shape = tuple(int(d) for d in detail["shape"])
        expected = int(np.prod(shape)) * dtype.itemsize
        if len(data) != expected:
            raise ValueError(
                f"input {name!r} of {signature!r} takes {expected} bytes ({dtype} {list(shape)}), got {len(data)}"
            )
        feed[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
    results = runner(**feed)
    listed, payload = [], b""
    for name in header["outputs"]:
        if name not in results:
            raise ValueError(f"signature {signature!r} has no output {name!r}; it has {sorted(results)}")
        data = np.ascontiguousarray(_perturbed(signature, name, results[name], spec)).tobytes()
        listed.append([name, len(data)])
        payload += data
    return {"outputs": listed}, payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=-1)
    parser.add_argument("--no-xnnpack", action="store_true")
    parser.add_argument("--perturb", default=None, help="SIGNATURE:OUTPUT:INDEX:DELTA")
    args = parser.parse_args(argv)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    spec = None
    if args.perturb:
        signature, name, index, delta = args.perturb.split(":")
        spec = (signature, name, int(index), float(delta))
    kwargs = {"num_threads": args.threads if args.threads > 0 else None}
    if args.no_xnnpack:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = Interpreter(model_path=args.model, **kwargs)
        runners = {key: interpreter.get_signature_runner(key) for key in interpreter.get_signature_list()}
    except (RuntimeError, ValueError) as err:
        _reply(stdout, {"error": f"cannot load {args.model}: {err}"})
        return 3
    _reply(stdout, {"ready": True, "signatures": sorted(runners)})
    while True:
        line = stdin.readline()
        if not line:
            return 0
        try:
            header = json.loads(line)
            reply, payload = _run(runners, header, stdin, spec)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            _reply(stdout, {"error": f"{type(err).__name__}: {err}"})
            continue
        _reply(stdout, reply, payload)


if __name__ == "__main__":
    sys.exit(main())

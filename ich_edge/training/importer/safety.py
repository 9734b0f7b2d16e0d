"""Refuse what import cannot deploy by reading a model file's CONFIG, before anything is deserialized.

A Keras ``Lambda`` layer stores Python bytecode in the file, which tf_keras runs while it
loads an ``.h5``; a custom layer needs code from elsewhere. So every format's layer list is
read as JSON first (the ``model_config`` attribute of an ``.h5``, ``config.json`` inside a
``.keras`` zip, the per-layer metadata of a tf_keras SavedModel's ``keras_metadata.pb``) and
the model is refused, in one line naming the layer, when it holds a layer that

* runs code from the file or from elsewhere: ``Lambda``, or a class that is not a standard
  Keras layer (a custom layer or model subclass);
* cannot be exported as ich-edge's per-slice encoder plus stateless recurrent head:
  attention layers, ConvLSTM and 3-D layers that mix slices inside the network, and
  ``Masking`` (the deployed file pads a short study with blank slices and has no mask, so
  it would differ from the model on padded windows).

Only then is the file handed to Keras (:mod:`load`). The lists are in ``docs/import.md``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ich_edge.errors import ModelError

MODEL_CLASSES = ("Sequential", "Functional", "Model")
ATTENTION = ("Attention", "AdditiveAttention", "MultiHeadAttention", "GroupedQueryAttention", "GroupQueryAttention")
ACROSS_SLICES = ("Conv3D", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "MaxPooling3D", "AveragePooling3D",
                 "Conv3DTranspose", "GlobalAveragePooling3D", "GlobalMaxPooling3D")
SUPPORTED_HINT = ("ich-edge deploys a per-slice 2-D CNN (TimeDistributed) followed by LSTM, GRU or SimpleRNN layers "
                  "(stacked or Bidirectional) and Dense layers; see docs/import.md")


def _why_refused(class_name: str, record: dict) -> str | None:
    """The reason a layer record is refused, or None."""
    if class_name == "Lambda":
        return ("is a Lambda layer, whose Python code is stored in the file; ich-edge import never runs code from a "
                "model file (none of it was executed): replace the Lambda with standard Keras layers and save again")
    if class_name in ATTENTION:
        return f"is an attention layer: attention is not supported; {SUPPORTED_HINT}"
    if class_name in ACROSS_SLICES:
        return (f"is a {class_name}, which mixes neighbouring slices inside the network: not supported; "
                f"{SUPPORTED_HINT}")
    if class_name == "Masking":
        return ("is a Masking layer: the deployed file runs fixed windows and pads a short study with blank slices "
                "WITHOUT a mask, so it would differ from your model on padded windows; remove the Masking layer (the "
                "other layers keep their weights), check the model without it and import that")
    module = str(record.get("module") or "")
    registered = str(record.get("registered_name") or "")
    if (module and not module.startswith(("keras", "tf_keras"))) or ">" in registered or not _is_keras_class(class_name):
        return ("is not a standard Keras layer (a custom layer or model class, whose code is not in the file); "
                f"ich-edge import runs no code from a model file and takes standard Keras layers only; {SUPPORTED_HINT}")
    return None


def _is_keras_class(class_name: str) -> bool:
    from ich_edge.training.keras import keras

    return class_name in MODEL_CLASSES or class_name == "InputLayer" or isinstance(getattr(keras.layers, class_name, None), type)


def _refuse(path: Path, name: str, class_name: str, why: str) -> None:
    raise ModelError(f"{path}: layer {name!r} ({class_name}) {why}")


def _walk(record: dict, found: list) -> None:
    if not isinstance(record, dict):
        return
    class_name = str(record.get("class_name", "?"))
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    why = _why_refused(class_name, record)
    if why:
        found.append((str(config.get("name") or record.get("name") or "?"), class_name, why))
    if class_name in MODEL_CLASSES:
        for inner in config.get("layers") or []:
            _walk(inner, found)
    for key in ("layer", "backward_layer", "cell"):
        inner = config.get(key)
        if isinstance(inner, dict) and "class_name" in inner:
            _walk(inner, found)
    for inner in config.get("cells") or []:
        _walk(inner, found)


def _refuse_first(path: Path, found: list) -> None:
    """Refuse the most telling of the refused layers: code in the file, then a named kind, then the rest."""
    if not found:
        return
    rank = lambda item: 0 if item[1] == "Lambda" else 2 if "not a standard Keras layer" in item[2] else 1  # noqa: E731
    _refuse(path, *min(found, key=rank))


def check_layer_records(record: dict, path: Path) -> None:
    """Walk a serialized model (``{"class_name", "config"}``) and refuse its unsafe or unsupported layer, if any."""
    found = []
    _walk(record, found)
    _refuse_first(path, found)


def _h5_config(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as handle:
        text = handle.attrs.get("model_config")
    if text is None:
        raise ModelError(f"{path} holds weights only (no model_config); save the whole model with model.save")
    return json.loads(text.decode() if isinstance(text, bytes) else text)


def _saved_model_records(path: Path) -> list[dict]:
    """Per-layer metadata records of a tf_keras SavedModel (its ``keras_metadata.pb``)."""
    metadata = path / "keras_metadata.pb"
    if not metadata.is_file():
        raise ModelError(
            f"{path} is a SavedModel exported for serving (model.export or tf.saved_model.save): it holds a traced graph "
            "but not the Keras layers that import splits into a slice encoder and a sequence head; save the Keras "
            "model itself with model.save('model.keras') (or .h5) and import that file"
        )
    from tf_keras.protobuf import saved_metadata_pb2

    proto = saved_metadata_pb2.SavedMetadata()
    proto.ParseFromString(metadata.read_bytes())
    records = []
    for node in proto.nodes:
        if "metric" in node.identifier:
            continue
        try:
            records.append(json.loads(node.metadata))
        except ValueError:
            raise ModelError(f"{path}: the Keras metadata of {node.node_path!r} is not readable JSON") from None
    return records


def check_model_file(path: Path, fmt: str) -> None:
    """Refuse ``path`` (of format ``fmt``, :func:`load.detect_format`) before Keras deserializes it."""
    if fmt == "h5":
        check_layer_records(_h5_config(path), path)
    elif fmt in ("keras2", "keras3"):
        with zipfile.ZipFile(path) as archive:
            check_layer_records(json.loads(archive.read("config.json")), path)
    elif fmt == "savedmodel":
        found = []
        for record in _saved_model_records(path):
            why = _why_refused(str(record.get("class_name", "?")), {})
            if why:
                found.append((str(record.get("name", "?")), str(record.get("class_name")), why))
        _refuse_first(path, found)

"""``ich-edge import``: bring your own Keras CNN-LSTM (.h5, .keras or SavedModel) into a RUN_DIR.

TensorFlow is imported only when the command runs; a Keras 3 ``.keras`` file is opened by
Keras 3 in a child process (see :mod:`ich_edge.training.importer`).
"""

from __future__ import annotations

import click

from ich_edge import LABELS
from ich_edge.cli.conventions import list_option


@click.command("import")
@click.option("--model", "model_path", required=True, type=click.Path(path_type=str),
              help="The Keras model: tf_keras/Keras 2 .h5, Keras 3 or tf_keras .keras, or a tf_keras SavedModel folder.")
@click.option("--out", required=True, type=click.Path(path_type=str), help="RUN_DIR to write (qat, convert, parity read it).")
@click.option("--window-slices", type=int, default=None,
              help="Slices per window, when the model's window length is None (or for a per-slice model; default 8).")
@click.option("--input-scale", type=click.Choice(["unit", "symmetric", "hu"]), default="unit", show_default=True,
              help="What the model was trained on: unit = window/255 in [0, 1]; symmetric = [-1, 1]; hu = Hounsfield "
                   "units (clipped to each window).")
@click.option("--channels", type=click.Choice(["brain,subdural,bone", "brain"]), default="brain,subdural,bone",
              show_default=True, help="The model's input channels, in order (windows of the cache).")
@list_option("--output-labels", "labels", default=None,
             help=f"The model's output classes in order, comma-separated and/or repeated: all six or a subset (default: {','.join(LABELS)}); 'background' names a softmax's no-bleed class, whose column is dropped.")
@click.option("--softmax-ok", is_flag=True, help="Accept a softmax output as per-label scores (needs --output-labels).")
@click.option("--data", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Prepared cache the model will be used with: its preprocessing is recorded and the input size checked.")
@click.option("--force", is_flag=True, help="Replace an existing, non-empty --out.")
def command(model_path, out, window_slices, input_scale, channels, labels, softmax_ok, data, force) -> None:
    """Import a Keras CNN-LSTM trained elsewhere into a RUN_DIR.

    The model is split into the per-slice encoder (its leading TimeDistributed layers) and
    the head (recurrent and dense layers), so the converted file keeps the encode-once form.
    The RUN_DIR records the original file's path and sha256; parity compares against it.
    """
    from ich_edge.training.importer import CHANNEL_SETS, ImportConfig, import_model

    config = ImportConfig(window_slices=window_slices, input_scale=input_scale, channels=CHANNEL_SETS[channels],
                          labels=tuple(labels) or None, softmax_ok=softmax_ok, force=force)
    import_model(model_path, out, config, data=data, log=click.echo)

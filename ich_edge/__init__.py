"""ich-edge: a CNN-LSTM for intracranial hemorrhage on head CT, from DICOM to the edge.

The package is split in two tiers that never mix:

* the runtime tier (DICOM reading, transforms, the LiteRT runtime, ``predict``, ``bench``)
  imports only numpy, pydicom, click and ai-edge-litert;
* the training tier (``ich_edge.training``, ``converters``) may import TensorFlow.

Importing ``ich_edge`` never imports TensorFlow.
"""

__version__ = "0.1.0"

#: Output order of every model, label file and report (the RSNA 2019 order).
LABELS = (
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
    "any",
)
SUBTYPES = LABELS[:-1]
ANY_INDEX = LABELS.index("any")
#: Short names for captions and narrow table columns.
SHORT_NAMES = {
    "epidural": "EDH",
    "intraparenchymal": "IPH",
    "intraventricular": "IVH",
    "subarachnoid": "SAH",
    "subdural": "SDH",
    "any": "any",
}

__all__ = ["LABELS", "SUBTYPES", "ANY_INDEX", "SHORT_NAMES", "__version__"]

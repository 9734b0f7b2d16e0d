"""``ich-edge assets``: everything a phone app needs to run an ich-edge model.

* :mod:`ich_edge.assets.build`: the folder (model, labels, manifest, README, sample, snippets);
* :mod:`ich_edge.assets.manifest`: manifest.json, complete enough to reimplement the preprocessing;
* :mod:`ich_edge.assets.sample`: the sample study and its golden outputs (expected.json);
* :mod:`ich_edge.assets.reference_client`: plays the app on a written folder and checks it;
* ``templates/``: the README and the Kotlin/Swift snippets, filled from the manifest.

Runtime tier: numpy, pydicom and ai-edge-litert only (no TensorFlow).
"""

from ich_edge.assets.build import ASSET_NAMES, AssetsConfig, write_assets

__all__ = ["ASSET_NAMES", "AssetsConfig", "write_assets"]

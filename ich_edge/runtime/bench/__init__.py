"""``ich-edge bench``: latency, memory and backend coverage of ``.tflite`` models.

* :mod:`~ich_edge.runtime.bench.runner`: the configurations, rounds and the result (``benchmark``);
* :mod:`~ich_edge.runtime.bench.worker`: one configuration measured in a fresh process;
* :mod:`~ich_edge.runtime.bench.gpu`: the GPU backends (LiteRT CompiledModel);
* :mod:`~ich_edge.runtime.bench.report`: tables, op profiles and result JSON files;
* :mod:`~ich_edge.runtime.bench.sysinfo`: the machine a result was measured on.

Runtime tier (no TensorFlow). This ``__init__`` imports nothing, so the worker process
starts as light as before.
"""

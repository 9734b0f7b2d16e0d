"""Ingest stage: DICOM folders in, the prepared cache out (``ich-edge inspect``, ``ich-edge prepare``).

What a newcomer finds here, in the order the data flows::

    inspect.py        one line per series: what prepare would keep or leave out, and why
    scan_manifest.py  the header scan, read once and shared by prepare's shards
    series_filter.py  which series are judged (CT, axial, not a localizer, enough slices)
    prepare.py        decode each kept series once into the cache, labels attached
    cache.py          the cache's on-disk format, read by training, converters and bench

Runtime tier: numpy, pydicom and the standard library only, so an edge box can prepare and
inspect; the runtime (``ich_edge.runtime``) may import this stage, never the other way round,
and nothing here imports ``ich_edge.training`` or ``converters``.
"""

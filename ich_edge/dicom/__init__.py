"""DICOM reading and writing for head CT."""

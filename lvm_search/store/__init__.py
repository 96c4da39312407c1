"""What is on disk: the run format (names, typed records, reading and atomic writing), safe YAML,
provenance.
"""

"""What is on disk: the run format (names, typed records, reading and atomic writing), safe YAML,
provenance, and the one validator of what is read back (records).
"""

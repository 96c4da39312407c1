"""Corpora: npz formats, windows inside documents, the document split; passage texts."""

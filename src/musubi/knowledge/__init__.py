"""Code knowledge: syntax-aware chunking, embeddings, vector stores, hybrid retrieval,
context packing and issue-to-file localisation."""

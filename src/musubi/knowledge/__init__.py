"""The code knowledge engine: index, hybrid search and context packing of repositories."""

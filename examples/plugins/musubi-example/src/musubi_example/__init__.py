"""A sample MUSUBI plugin: an echo provider and a trigram embedder, found by entry points."""

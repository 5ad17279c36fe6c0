"""A sample MUSUBI plugin: an echo provider, a trigram embedder, a glossary step and a
tracker kept as JSON files, found by entry points."""

"""Batch processing: OpenAI-compatible files and batches run on a durable job queue."""

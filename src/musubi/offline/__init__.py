"""The offline model's engine: SmolLM2 (a llama) run with numpy from a GGUF file.

Out of the gateway core: the gateway reaches it only through the ``local`` provider
(``musubi.providers`` entry point, ``[local]`` extra), which imports it on first use.
"""

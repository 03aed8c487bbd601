"""The local tier: `LocalProvider` (provider.py) over one engine per runtime (llamacpp.py, transformers/).

Nothing is imported here: the container imports only the engine it selects.
"""

"""Offline-to-online fine-tuning (docs/online.md): after the offline updates, act in the environment and keep
training; :mod:`.phase` is the callback, built from the ``online`` config node."""

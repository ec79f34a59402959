"""Reproduce an image: resolve the resources it was made with (resolve), find them among the
user's model files (local_models, hash_cache) and download what is missing (fetch); service (the
shells' entry), offline (reproduce from cached look-ups only)."""

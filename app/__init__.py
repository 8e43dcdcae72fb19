"""LQ-VAE Studio, the desktop app: panels observe one ``AppState``; workers run the engine.

Importing ``app`` (or any panel) never imports torch: the engine is imported by the first worker so the
window appears before the models load (see ``app.engine.adapter``).
"""

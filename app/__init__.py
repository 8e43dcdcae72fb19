"""LQ-VAE Studio, the desktop app: panels observe one ``AppState``; workers run the engine.

``state`` (what the panels observe; no widgets), ``engine`` (controller, workers, the one door into ``lqvae``),
``input`` (image files and framing), ``panels`` (one widget per file), ``render`` (arrays to pictures);
``main_window`` assembles them. Importing ``app`` (or any panel) never imports torch: the engine is imported by
the first worker so the window appears before the models load (see ``app.engine.adapter``).
"""

"""Where the app runs the engine: the controller, the workers, and the one door into ``lqvae``. No widgets.

``controller`` (acts on the state's intents: boot, load models, analyse, evaluate, open files; the newest
request wins), ``workers`` (``Worker`` and ``WorkerPool`` on a ``QThreadPool``: cancel flag, progress, plain
results delivered on the GUI thread) and ``adapter`` (every call into the engine, run on a worker; torch is
imported on the first one, after the window is up).
"""

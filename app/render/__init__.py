"""Arrays to pictures, in the GUI thread: QImages of the images and thumbnails, figures, and the export.

``images`` (grey images, the diverging perturbation map, thumbnails, verdict colours), ``figures`` (accuracy vs
ε and the Hamming histogram with pyqtgraph, offscreen too) and ``export`` (the image row as PNG plus a JSON of
the settings and numbers).
"""

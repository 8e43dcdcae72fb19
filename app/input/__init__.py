"""Images in: a user's file decoded in a sandboxed child process, and any grey image framed as a 28x28 input.

``image_io`` (checks a file before decoding it, refuses it with a reason), ``decode_child`` (the child process
that decodes under an address-space cap) and ``preprocess`` (crop, scale and centre like MNIST; pure numpy).
No widgets, no torch.
"""

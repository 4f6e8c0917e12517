"""The internals of keras_glr: the estimator, copies and noise streams, the Keras glue, runs and files.

Nothing here is public API: names may change between releases. The public
names are those `keras_glr` and its subpackages list in `__all__`; the docs'
"How it works" page walks through this folder.
"""

"""Command-line programs of keras_glr: glr-train, glr-export."""

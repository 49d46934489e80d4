"""digitrec: recognise handwritten digits.

    from digitrec import Recognizer
    rec = Recognizer()              # the model shipped with the package
    rec.predict("photo.jpg").digit

Importing digitrec loads no PyTorch; `Recognizer` comes from the light ONNX runtime.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import digitrec` stays cheap and the CLI can import __version__ alone.
    if name == "Recognizer":
        from digitrec.runtime import Recognizer

        return Recognizer
    raise AttributeError(f"module 'digitrec' has no attribute {name!r}")


__all__ = ["Recognizer", "__version__"]

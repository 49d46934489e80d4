"""digitrec: recognise handwritten digits.

    from digitrec import Recognizer
    rec = Recognizer()              # the model shipped with the package
    rec.predict("photo.jpg").digit
    digitrec.finetune("my_digits.csv", "mine.onnx")   # learn your handwriting (needs PyTorch)

Importing digitrec loads no PyTorch; `Recognizer` comes from the light ONNX runtime.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import digitrec` stays cheap and the CLI can import __version__ alone.
    if name == "Recognizer":
        from digitrec.runtime import Recognizer

        return Recognizer
    if name == "finetune":  # a function; PyTorch is imported only when it runs
        from digitrec.tune import finetune

        return finetune
    raise AttributeError(f"module 'digitrec' has no attribute {name!r}")


__all__ = ["Recognizer", "__version__", "finetune"]

"""The compiled parts of the package: the training engine's core (src/sentiment/engine/_core.c),
the text normalization (src/sentiment/_text.c) and the sentence splitter of the four answers
(src/sentiment/_sentences.c).

Everything else is configured in pyproject.toml. The extensions need only a C compiler and
Python's headers (scripts/prereqs.sh checks for both); they use no numpy headers.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sentiment.engine._core",
            ["src/sentiment/engine/_core.c"],
            # No -ffast-math: serving must reproduce fastText's float results (its softmax, log
            # and exp), and fast-math may reorder sums and call approximate vector math.
            # -pthread for the training threads.
            extra_compile_args=["-O3", "-fno-math-errno", "-funroll-loops", "-pthread"],
            extra_link_args=["-pthread"],
            libraries=["m"],
        ),
        Extension(
            "sentiment._text",
            ["src/sentiment/_text.c"],
            extra_compile_args=["-O3", "-funroll-loops"],
        ),
        Extension(
            "sentiment._sentences",
            ["src/sentiment/_sentences.c"],
            extra_compile_args=["-O3"],
        ),
    ]
)

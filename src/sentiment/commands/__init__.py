"""One module per CLI command; each defines a click command named `command`.

Commands are thin: they turn flags into settings and arguments, call the library, and print.
The library raises `SentimentError`s; `sentiment.cli` turns them into messages and exit codes.
"""

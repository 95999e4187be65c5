"""The public sentiment API and web page (`sentiment api`, `sentiment up`)."""

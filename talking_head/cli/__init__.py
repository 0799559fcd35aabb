"""Thin argparse shells over the library, one module per command."""

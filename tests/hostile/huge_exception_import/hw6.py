"""Hostile submission: the import raises an exception whose class name and message are 1 MB each."""
raise type("E" * (1 << 20), (Exception,), {})("M" * (1 << 20))

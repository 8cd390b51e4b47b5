"""pytest plugin (entry point ``pytest11``): a no-op unless a test asks for it."""

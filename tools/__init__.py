"""Development tools: the local stack, synthetic traffic and evaluation scripts (never deployed)."""

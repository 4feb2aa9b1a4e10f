"""One module per pipeline stage; each reads the previous stage's manifest and writes its own."""

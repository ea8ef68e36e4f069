"""The test-model corpus (``models.corpus.CORPUS``) and the helpers that build it."""

"""One attack run: plan (every check once), score (resumable batches), write (files, records, loggers)."""

"""The ops command line (`kcb-ops` or `python -m opsctl`): status, dead letters, texts, outbox."""

"""The booking service's named queries, loaded once."""

from pathlib import Path

from shared.db import Queries

Q = Queries(Path(__file__).with_name("queries.sql"))
PRODUCER = "booking"

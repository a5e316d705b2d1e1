"""Named SQL files (`shared.db.Queries`): queries, fragments, fragments made in Python."""

from __future__ import annotations

import pytest

from shared.db import Queries


def test_a_named_query_can_include_a_fragment_that_is_not_a_query_itself(tmp_path):
    path = tmp_path / "q.sql"
    path.write_text("-- name: first\nWITH picked AS (SELECT 1 AS id),\n-- include: body\n\n"
                    "-- fragment: body\nt AS (SELECT id FROM picked)\nSELECT * FROM t;\n\n"
                    "-- name: second\nSELECT 2;\n")
    queries = Queries(path)
    assert queries.names() == ["first", "second"]
    assert queries.first == ("WITH picked AS (SELECT 1 AS id),\n"
                             "t AS (SELECT id FROM picked)\nSELECT * FROM t;")
    assert queries.second == "SELECT 2;"


def test_a_fragment_made_in_python_is_included_like_one_in_the_file(tmp_path):
    path = tmp_path / "q.sql"
    path.write_text("-- name: write\nWITH done AS (\n-- include: events\n)\nSELECT 1;\n")
    queries = Queries(path, fragments={"events": "INSERT INTO outbox SELECT 1"})
    assert queries.write == "WITH done AS (\nINSERT INTO outbox SELECT 1\n)\nSELECT 1;"


def test_a_fragment_given_twice_or_missing_is_refused_when_the_file_is_loaded(tmp_path):
    path = tmp_path / "q.sql"
    path.write_text("-- fragment: events\nSELECT 1\n\n-- name: write\n-- include: events\n")
    with pytest.raises(ValueError, match=r"fragments \['events'\] are given twice"):
        Queries(path, fragments={"events": "SELECT 2"})
    path.write_text("-- name: write\n-- include: events\n")
    with pytest.raises(ValueError, match="no fragment named 'events'"):
        Queries(path)


def test_a_query_that_is_not_in_the_file_is_an_attribute_error_naming_it(tmp_path):
    path = tmp_path / "q.sql"
    path.write_text("-- name: one\nSELECT 1;\n")
    with pytest.raises(AttributeError, match="no query named 'two'"):
        _ = Queries(path).two

"""The one text-table layout the benchmark commands print (crowdstream.engines.table)."""

from crowdstream.engines.table import Column, format_table


def test_columns_line_up_and_a_missing_cell_reads_as_a_dash() -> None:
    columns = (Column("name", 6, lambda row: row[0], left=True), Column("n", 4, lambda row: row[1]))
    assert format_table([("a", "1"), ("bb", None)], columns, rule=True).splitlines() == [
        "name      n",
        "-----------",
        "a         1",
        "bb        -",
    ]


def test_a_cell_wider_than_its_column_is_kept_whole() -> None:
    columns = (Column("x", 2, lambda row: row),)
    assert format_table(["12345"], columns) == " x\n12345"

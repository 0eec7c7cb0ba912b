"""Read delimited rating and item files into string tables with clear errors.

Every reader here returns string columns, so each layout decides how to parse
numbers and can name the file, column and row of a bad value.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adaptrec.data.dataset import DataError

_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")


@dataclass
class TableSource:
    """A file to read: a path on disk, or bytes read from an archive member.

    Attributes:
        name: How error messages name the file.
        path: The file on disk, or ``None`` when ``content`` is set.
        content: The file's bytes when it comes from an archive.
    """

    name: str
    path: Path | None = None
    content: bytes | None = None

    @classmethod
    def from_path(cls, path: Path) -> TableSource:
        return cls(name=str(path), path=path)

    def open(self) -> io.BufferedIOBase:
        if self.content is not None:
            return io.BytesIO(self.content)
        assert self.path is not None
        try:
            return self.path.open("rb")
        except FileNotFoundError as error:
            raise DataError(f"{self.name} not found") from error
        except OSError as error:
            raise DataError(f"{self.name} cannot be read: {error}") from error


def read_table(
    source: TableSource,
    *,
    sep: str,
    names: list[str] | None,
    skip_header: bool,
    encoding: str = "utf-8",
    quoting: int = csv.QUOTE_NONE,
    may_be_empty: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Read a delimited file as strings, every row with exactly ``len(names)`` fields.

    With ``names=None`` the first line gives the column names. A multi-character
    ``sep`` (such as ``"::"``) uses pandas' Python parser, which is slower. Columns
    outside ``may_be_empty`` must have a value in every row.

    Raises:
        DataError: The file is missing or cannot be decoded, a row has too many
            fields, or a column outside ``may_be_empty`` lacks a value.
    """
    engine = "python" if len(sep) > 1 else "c"
    handle = source.open()
    try:
        frame = pd.read_csv(
            handle,
            sep=sep,
            header=0 if names is None else None,
            names=names,
            skiprows=1 if (skip_header and names is not None) else None,
            dtype=str,
            # Only an empty or missing field becomes NaN, so titles such as "NA"
            # stay text.
            keep_default_na=False,
            na_values=[""],
            quoting=quoting,
            encoding=encoding,
            engine=engine,
        )
    except UnicodeDecodeError as error:
        raise DataError(
            f"{source.name} is not valid {encoding} text ({error.reason} at byte "
            f"{error.start})"
        ) from error
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{source.name} is empty") from error
    except (pd.errors.ParserError, ValueError) as error:
        expected = f"{len(names)} fields separated by {sep!r}" if names else "a table"
        raise DataError(
            f"{source.name} is not {expected}: {error}".replace("\n", " ")
        ) from error
    finally:
        handle.close()

    # pandas reads the missing fields of a short row as NaN, the same as empty
    # fields, so one check covers both.
    for column in frame.columns:
        if column in may_be_empty:
            continue
        missing = np.flatnonzero(frame[column].isna().to_numpy())
        if len(missing):
            raise DataError(
                f"{source.name}: data row {int(missing[0]) + 1} has no value in "
                f"column {column} (empty field or too few fields); expected the "
                f"fields {', '.join(map(str, frame.columns))} "
                f"({len(missing)} row(s) lack it)"
            )
    return frame.fillna("")


def require_columns(frame: pd.DataFrame, columns: list[str], source_name: str) -> None:
    """Raise DataError when ``frame`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source_name} lacks column(s) {missing}; it has {list(frame.columns)}"
        )


def parse_numbers(values: pd.Series, column: str, source_name: str) -> np.ndarray:
    """Parse a string column as float64, naming the first bad value and its row.

    Raises:
        DataError: A value is empty, non-numeric or not finite.
    """
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{source_name}: column {column} must be numeric, but data row {row + 1} "
            f"has {values.iloc[row]!r} ({len(bad)} bad value(s) in all)"
        )
    return numbers


def parse_year(values: pd.Series) -> np.ndarray:
    """Parse a year column, returning NaN where it is not a number (``"unknown"``)."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def split_title_year(titles: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Split ``"Toy Story (1995)"`` into ``"Toy Story"`` and 1995.0.

    A title without a trailing year keeps its text and gets NaN. A year range such as
    ``"(2006-2007)"`` gives its first year.
    """
    extracted = titles.str.extract(_YEAR_IN_TITLE, expand=False)
    years = pd.to_numeric(extracted, errors="coerce").to_numpy(dtype=np.float64)
    stripped = titles.str.replace(_YEAR_IN_TITLE, "", regex=True).str.strip()
    return stripped, years

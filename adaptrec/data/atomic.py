"""RecBole atomic files: tab-separated tables whose header names each ``field:type``.

Examples from RecBole's ml-100k: ``.inter`` has ``user_id:token item_id:token
rating:float timestamp:float``; ``.item`` has ``item_id:token movie_title:token_seq
release_year:token class:token_seq`` where ``class`` lists genres separated by
spaces; ``.kg`` has ``head_id:token relation_id:token tail_id:token``; ``.link`` has
``item_id:token entity_id:token``.
"""

from __future__ import annotations

import pandas as pd

from adaptrec.data.dataset import DataError
from adaptrec.data.readers import TableSource, read_table, require_columns

# Field types defined by RecBole's atomic file format.
FIELD_TYPES = frozenset({"token", "token_seq", "float", "float_seq"})


def read_atomic(source: TableSource, required: list[str]) -> pd.DataFrame:
    """Read an atomic file into string columns named without their ``:type``.

    Raises:
        DataError: The header is not ``name:type`` fields, a required field is
            missing from the header or empty in a row, or a row has too many fields.
    """
    with source.open() as handle:
        header = handle.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    if not header:
        raise DataError(f"{source.name} is empty; expected a 'name:type' header line")

    names = []
    for field in header.split("\t"):
        name, colon, field_type = field.partition(":")
        if not colon or field_type not in FIELD_TYPES:
            raise DataError(
                f"{source.name}: header field {field!r} is not 'name:type' with a type "
                f"in {sorted(FIELD_TYPES)}; is this a RecBole atomic file?"
            )
        names.append(name)

    optional = tuple(name for name in names if name not in required)
    frame = read_table(
        source, sep="\t", names=names, skip_header=True, may_be_empty=optional
    )
    require_columns(frame, required, source.name)
    return frame


def first_present(frame: pd.DataFrame, candidates: list[str]) -> str | None:
    """Return the first of ``candidates`` that is a column of ``frame``."""
    for name in candidates:
        if name in frame.columns:
            return name
    return None

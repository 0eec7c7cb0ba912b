"""Tiny MovieLens folders in each GroupLens layout, written for tests."""

from __future__ import annotations

from pathlib import Path

GENRE_NAMES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def _flags(*genres: str) -> str:
    return "|".join("1" if name in genres else "0" for name in GENRE_NAMES)


def write_ml100k(folder: Path, *, with_genre_file: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(
        "1\t10\t5\t881250949\n"
        "1\t20\t3\t881250950\n"
        "2\t10\t4\t881250951\n"
        "2\t30\t1\t881250952\n"
        "3\t20\t4\t881250953\n"
    )
    url = "http://us.imdb.com/M/title-exact?x"
    lines = [
        f"10|Toy Story (1995)|01-Jan-1995||{url}|{_flags('Animation', 'Comedy')}",
        f"20|Café au Lait (1994)|01-Jan-1994||{url}|{_flags('Comedy')}",
        f"30|Untitled|01-Jan-1971||{url}|{_flags('unknown')}",
    ]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    if with_genre_file:
        genre_lines = [f"{name}|{i}" for i, name in enumerate(GENRE_NAMES)]
        (folder / "u.genre").write_text("\n".join(genre_lines) + "\n\n")
    return folder


def write_ml1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    )
    movies = (
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "3952::Contender: The Sequel, The (2000)::Drama|Thriller\n"
    )
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    return folder


def write_ml_csv(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        "1,2,3.5,1112486027\n"
        "1,11,4.5,1112484676\n"
        "7,2,4.0,1112484819\n"
        "7,99,2.0,1112484800\n"
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        "2,Jumanji (1995),Adventure|Children|Fantasy\n"
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        "99,Babylon 5,(no genres listed)\n"
        "150,Señorita Extraviada (2001),Documentary\n"
    )
    return folder

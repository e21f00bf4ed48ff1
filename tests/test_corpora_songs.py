"""split_songs: the marker rule, the blank-line rules, and the bundled songbook."""

from toytorch.corpora import (
    DEFAULT_CORPUS,
    read_corpus,
    resolve_corpus,
    song_title,
    split_songs,
)


def test_marker_lines_start_songs_and_a_preamble_is_its_own_song():
    text = "intro line\n\n# One\n\nla la\n\n\n\n# Two\nlo lo\n\nchorus\n"

    assert split_songs(text) == [
        "intro line\n",
        "# One\n\nla la\n",
        "# Two\nlo lo\n\nchorus\n",
    ]


def test_without_markers_two_blank_lines_separate_songs():
    text = "verse a\n\nverse b\n\n\nsecond song\n \n\t\n\nthird\n"

    assert split_songs(text) == ["verse a\n\nverse b\n", "second song\n", "third\n"]


def test_with_single_blank_lines_only_each_block_is_a_song():
    assert split_songs("a\nb\n\nc\n  \nd") == ["a\nb\n", "c\n", "d\n"]


def test_crlf_and_whitespace_only_pieces():
    assert split_songs("# A\r\nx\r\n\r\n# B\r\ny\r\n") == ["# A\nx\n", "# B\ny\n"]
    assert split_songs("  \n\n\n \n") == []


def test_a_hash_without_a_title_is_not_a_marker():
    assert split_songs("#\nx\n\n#hashtag\ny\n") == ["#\nx\n", "#hashtag\ny\n"]
    assert song_title("# The Title \nla\n") == "The Title"
    assert song_title("no marker\n") is None


def test_bundled_songbook_splits_into_at_least_twenty_titled_songs():
    text = read_corpus(resolve_corpus(DEFAULT_CORPUS))

    songs = split_songs(text)

    assert len(songs) >= 20
    titles = [song_title(s) for s in songs]
    assert None not in titles and len(set(titles)) == len(titles)
    assert len(titles) == text.count("\n# ") + text.startswith("# ")
    # nothing is lost: the songs rejoined with one blank line are the file
    assert "\n".join(songs) == text
    for song in songs:
        body = song.split("\n", 1)[1]
        assert body.count("\n") >= 8, f"{song_title(song)!r} is too short"


def test_songbook_has_a_song_of_about_one_kilobyte():
    """The LSTM memorisation test trains on one song of about 1 KB."""
    songs = split_songs(read_corpus(resolve_corpus(DEFAULT_CORPUS)))

    sizes = [len(s.encode()) for s in songs]
    assert any(900 <= n <= 1100 for n in sizes)
    assert 20_000 <= sum(sizes) <= 45_000

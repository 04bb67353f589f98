"""ops.pathspecs: command-line paths as data-folder paths, or a usage error."""

from __future__ import annotations

import unicodedata

import pytest

from libsync.errors import PathspecError, UsageError
from libsync.ops import pathspecs


@pytest.mark.parametrize("arg, path", [
    ("a.csv", "a.csv"),
    ("./a.csv", "a.csv"),
    ("sub/", "sub"),
    ("./sub/", "sub"),
    ("sub//x.csv", "sub/x.csv"),
    ("sub/./x.csv", "sub/x.csv"),
    ("sub/../a.csv", "a.csv"),
    ("sub/..", "."),
    (".", "."),
    ("./", "."),
    ("", "."),
    ("..a", "..a"),          # a name that starts with two dots stays inside
    ("a..", "a.."),
])
def test_harmless_forms_are_normalised(arg, path):
    assert pathspecs([arg]) == ((arg, path),)


def test_names_are_compared_in_nfc():
    nfd = unicodedata.normalize("NFD", "café.csv")
    assert pathspecs([nfd]) == ((nfd, unicodedata.normalize("NFC", "café.csv")),)


def test_no_paths_is_the_whole_folder():
    assert pathspecs(None) is None
    assert pathspecs([]) is None


@pytest.mark.parametrize("arg, message", [
    ("..", "'..' is outside the data folder"),
    ("../x", "'../x' is outside the data folder"),
    ("../../etc/passwd", "'../../etc/passwd' is outside the data folder"),
    ("a/../../x", "'a/../../x' is outside the data folder"),
    ("./..", "'./..' is outside the data folder"),
    ("/etc/passwd", "'/etc/passwd' is absolute; paths are relative to the data folder"),
    ("/", "'/' is absolute; paths are relative to the data folder"),
    ("//x", "'//x' is absolute; paths are relative to the data folder"),
])
def test_a_path_outside_the_data_folder_is_a_usage_error(arg, message):
    with pytest.raises(PathspecError) as info:
        pathspecs(["a.csv", arg])
    assert str(info.value) == message
    assert isinstance(info.value, UsageError)

"""paths.data_dir_near: the program's quick guess at the data folder, to
start find's listing before the configuration is parsed. It must agree with
the full parse wherever that succeeds, and give None, never an error,
where it does not."""

from __future__ import annotations

import pytest

from libsync.config import data_dir_of, read_config
from libsync.paths import data_dir_near


@pytest.mark.parametrize("text", [
    '{"remote": "s3://b/p"}',
    '{"remote": "s3://b/p", "data_dir": "Shared data"}',
    '{"remote": "s3://b/p", "data_dir": null}',
    '{"remote": "s3://b/p", "data_dir": "../outside"}',
])
def test_the_guess_agrees_with_the_configuration(tmp_path, text):
    (tmp_path / "s3sync.json").write_text(text)
    (tmp_path / "sub").mkdir()
    root, config = read_config(str(tmp_path / "sub"))
    assert data_dir_near(str(tmp_path / "sub")) == data_dir_of(root, config)


@pytest.mark.parametrize("text", [
    "{not json", '["a list"]', '{"remote": "s3://b/p", "data_dir": 5}', "\udcff",
])
def test_no_guess_from_a_file_that_cannot_be_read_at_a_glance(tmp_path, text):
    (tmp_path / "s3sync.json").write_text(text, errors="surrogateescape")
    assert data_dir_near(str(tmp_path)) is None


def test_no_guess_outside_a_workspace(tmp_path):
    assert data_dir_near(str(tmp_path)) is None

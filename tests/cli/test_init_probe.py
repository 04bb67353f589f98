"""A store that ignores conditional writes is refused at init, before any harm."""

from libsync.remotes.local import LocalRemote


def test_init_refuses_a_store_that_ignores_if_none_match(tmp_path, monkeypatch):
    from conftest import Teammate

    real_put = LocalRemote.put

    def careless_put(self, key, data, *, if_none_match=False, if_match=None):
        return real_put(self, key, data)  # an old server: the condition is dropped

    monkeypatch.setattr(LocalRemote, "put", careless_put)
    ann = Teammate(tmp_path / "ann", "ann")
    ann.root.mkdir()
    r = ann.run("init", str(tmp_path / "remote"))
    assert r.code == 4
    assert r.err == (f"s3sync init: error: {tmp_path / 'remote'} ignores conditional writes "
                     "(If-None-Match), so two people pushing at once could erase each other's "
                     "work; s3sync refuses to use it\n")
    assert not (ann.root / "s3sync.json").exists()
    assert not (tmp_path / "remote" / ".s3sync" / "format").exists()

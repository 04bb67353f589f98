"""Two teammates, one remote: the everyday loop, on a folder and over S3."""


def test_push_then_pull_converges(team, remote):
    ann, bob = team("ann"), team("bob")
    ann.write("raw/a.csv", "1,2\n")
    ann.ok("push", "-m", "first")
    assert remote.data() == {"raw/a.csv": b"1,2\n"}
    bob.ok("pull")
    assert bob.files() == {"raw/a.csv": b"1,2\n"}

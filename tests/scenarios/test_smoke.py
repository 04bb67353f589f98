"""Two teammates, one remote: the everyday loop, on a folder and over S3."""


def test_push_then_pull_converges(team, remote):
    ann, bob = team("ann"), team("bob")
    ann.write("raw/a.csv", "1,2\n")
    ann.ok("push", "-m", "first")
    assert remote.data() == {"raw/a.csv": b"1,2\n"}
    bob.ok("pull")
    assert bob.files() == {"raw/a.csv": b"1,2\n"}


def test_ignoring_a_synced_file_leaves_it_alone_on_both_sides(team, remote):
    ann, bob = team("ann"), team("bob")
    ann.write("keep.csv", "k\n")
    ann.write("scratch/big.tmp", "t\n")
    ann.ok("push")
    bob.ok("pull")
    ann.write(".s3syncignore", "*.tmp\n")
    (ann.data / "scratch" / "big.tmp").unlink()
    assert ann.ok("status", "--porcelain").out == "A  .s3syncignore\n"
    ann.ok("push")
    assert remote.data()["scratch/big.tmp"] == b"t\n"  # not deleted by the new rule
    bob.write("scratch/big.tmp", "bob's scratch\n")
    bob.ok("pull")  # brings the rule; bob's ignored file is his own from now on
    bob.ok("push")
    assert remote.data()["scratch/big.tmp"] == b"t\n"
    assert bob.read("scratch/big.tmp") == b"bob's scratch\n"


def test_a_rename_differing_only_in_case_goes_through_in_one_push(team, remote):
    ann, bob = team("ann"), team("bob")
    ann.write("Report.csv", "r\n")
    ann.ok("push")
    bob.ok("pull")
    (ann.data / "Report.csv").rename(ann.data / "report.csv")
    ann.ok("push", "--yes")
    assert remote.data() == {"report.csv": b"r\n"}
    bob.ok("pull", "--yes")
    assert bob.files() == {"report.csv": b"r\n"}

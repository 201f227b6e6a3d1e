"""--validate finds each kind of broken shard set, naming the problem."""

from __future__ import annotations

from tests.report.conftest import filter_report, fullest_shards, rewrite_tar


def test_the_real_build_validates(report_build):
    out, manifest, _ = report_build
    proc = filter_report(out, "--validate")
    assert "validate: OK" in proc.stdout
    assert f"{len(manifest['shards'])} shards, {manifest['counts']['status']['kept']} samples" in proc.stdout


def test_truncated_shard(build_copy):
    shard = fullest_shards(build_copy)[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    proc = filter_report(build_copy, "--validate", check_rc=1)
    assert f"{shard.name}: not readable to its end" in proc.stdout
    assert f"is kept in shards/{shard.name} but no shard holds that sample" in proc.stdout  # the rows it lost


def test_truncated_at_a_member_boundary(build_copy):
    """Cut exactly after a whole member: tarfile alone reads that as a clean end."""
    import tarfile

    shard = fullest_shards(build_copy)[0]
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    cut = members[3].offset  # header of the 4th file: the first 3 files are whole
    shard.write_bytes(shard.read_bytes()[:cut])
    proc = filter_report(build_copy, "--validate", check_rc=1)
    assert f"{shard.name}: not readable to its end" in proc.stdout and "no end-of-archive marker" in proc.stdout


def test_key_duplicated_in_two_shards(build_copy):
    taken = {}

    def grab(samples):
        taken["sample"] = samples[0]
        return samples

    first, second = sorted(fullest_shards(build_copy)[:2])
    rewrite_tar(first, grab)
    rewrite_tar(second, lambda s: s[:2] + [taken["sample"]] + s[2:])  # not adjacent to anything
    key = taken["sample"][0]
    proc = filter_report(build_copy, "--validate", check_rc=1)
    assert f"key {key} appears 2 times: in shards/{first.name}, shards/{second.name}" in proc.stdout


def test_ledger_row_with_no_sample(build_copy):
    dropped = {}

    def drop(samples):
        dropped["key"] = samples[1][0]
        return samples[:1] + samples[2:]

    rewrite_tar(fullest_shards(build_copy)[0], drop)
    proc = filter_report(build_copy, "--validate", check_rc=1)
    assert f"ledger row {dropped['key']}" in proc.stdout and "no shard holds that sample" in proc.stdout
    assert proc.stdout.count("PROBLEM") == 1


def test_missing_part_bad_json_and_undecodable_jpg(build_copy):
    import json

    keys = {}

    def damage(samples):
        (k0, p0), (k1, p1), (k2, p2) = samples[:3]
        keys.update(txt=k0, json=k1, jpg=k2)
        p0 = {k: v for k, v in p0.items() if k != "txt"}
        meta = json.loads(p1["json"])
        del meta["sizes"]
        p1 = {**p1, "json": json.dumps(meta).encode()}
        p2 = {**p2, "jpg": b"\xff\xd8not a jpeg"}
        return [(k0, p0), (k1, p1), (k2, p2)] + samples[3:]

    shard = fullest_shards(build_copy)[0]
    rewrite_tar(shard, damage)
    other = sorted(p for p in (build_copy / "shards").glob("*.tar") if p != shard)[0]
    proc = filter_report(build_copy, "--validate", "--shards", str(shard), check_rc=1)
    out = proc.stdout
    assert f"sample {keys['txt']} has no txt" in out
    assert f"sample {keys['json']}: json.sizes missing" in out
    assert f"sample {keys['jpg']}: jpg does not decode" in out
    assert other.name not in out  # --shards limited the check to the shards named

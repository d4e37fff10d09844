"""Signed checkpoints through the real CLI: a trail truncated at its tail, with the head
rewound to match, verifies alone but fails against the checkpoint kept elsewhere."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from tests import kidsapp
from tests.acceptance.harness import cli, env_without

OLD = "2020-01-01"


def setup(tmp_path: Path) -> dict[str, str]:
    kidsapp.write_config(tmp_path / "config")
    url = f"sqlite:///{tmp_path / 'kidsapp.db'}"
    kidsapp.create(url)
    env = {
        **env_without(os.environ, ("RETENTION_", kidsapp.URL_ENV)),
        kidsapp.URL_ENV: url,
        "RETENTION_CONFIG_DIR": str(tmp_path / "config"),
        "RETENTION_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RETENTION_PEPPER": "checkpoint-test-pepper-0123456789",
        "RETENTION_LOG_FORMAT": "json",
    }
    keys = cli(["audit", "keygen", "--out", str(tmp_path / "keys")], env)
    assert keys.returncode == 0, keys.stderr
    env["RETENTION_CHECKPOINT_KEY_FILE"] = str(tmp_path / "keys" / "checkpoint-key.pem")
    assert cli(["migrate"], env).returncode == 0
    return env


def rows(tmp_path: Path, *ids: int) -> None:
    db = sqlite3.connect(tmp_path / "kidsapp.db")
    with db:
        db.executemany(
            "INSERT INTO child (id, tenant_id, name, left_on) VALUES (?, 1, 'x', ?)",
            [(i, OLD) for i in ids],
        )
    db.close()


def test_truncation_at_the_tail_is_found_with_the_last_checkpoint(tmp_path: Path) -> None:
    """Two runs, each ending with a signed checkpoint (logged and stored); removing the
    second run's events and rewinding audit_head fools a plain verify, not one given the
    checkpoints, which names the checkpoint it cannot reach."""
    env = setup(tmp_path)
    public = str(tmp_path / "keys" / "checkpoint-key.pub.pem")
    rows(tmp_path, 1, 2)
    first = cli(["run", "--once"], env)
    assert first.returncode == 0, first.stderr
    logged = [json.loads(line) for line in first.stderr.splitlines() if line.startswith("{")]
    made = [e for e in logged if e["event"] == "audit.checkpoint"][-1]  # one per pair
    rows(tmp_path, 3)
    assert cli(["run", "--once"], env).returncode == 0
    exported = tmp_path / "checkpoints.jsonl"
    listing = cli(["audit", "checkpoints"], env)
    exported.write_text(listing.stdout, encoding="utf-8")
    kept = [json.loads(line) for line in listing.stdout.splitlines()]
    assert made["seq"] in [k["seq"] for k in kept] and kept[-1]["seq"] > made["seq"]
    assert {k["seq"]: k["signature"] for k in kept}[made["seq"]] == made["signature"]
    last = kept[-1]

    ok = cli(["audit", "verify", "--checkpoint", str(exported), "--public-key", public], env)
    assert ok.returncode == 0, ok.stderr
    assert f"reaches all {len(kept)} checkpoint(s), up to seq {last['seq']}" in ok.stdout

    # Truncate: drop the second run's events and rewind the head to the first checkpoint.
    db = sqlite3.connect(tmp_path / "state.db")
    with db:
        db.execute("DELETE FROM audit_events WHERE seq > ?", (made["seq"],))
        db.execute("UPDATE audit_head SET seq = ?, hash = ?", (made["seq"], made["hash"]))
    db.close()
    assert cli(["audit", "verify"], env).returncode == 0  # alone, the shorter chain holds up

    broken = cli(["audit", "verify", "--checkpoint", str(exported), "--public-key", public], env)
    assert broken.returncode == 1
    assert (
        f"the trail ends at seq {made['seq']}, but checkpoint {last['seq']}:{last['hash']} "
        "cannot be reached"
    ) in broken.stderr
    short = cli(["audit", "verify", "--checkpoint", f"{last['seq']}:{last['hash']}"], env)
    assert short.returncode == 1 and "cannot be reached" in short.stderr


def test_a_forged_or_rewritten_checkpoint_is_refused(tmp_path: Path) -> None:
    """A checkpoint whose hash was changed fails its signature; an unsigned SEQ:HASH with
    another hash than the trail's at that seq says the trail was rewritten."""
    env = setup(tmp_path)
    public = str(tmp_path / "keys" / "checkpoint-key.pub.pem")
    rows(tmp_path, 1)
    assert cli(["run", "--once"], env).returncode == 0
    line = cli(["audit", "checkpoints"], env).stdout.splitlines()[-1]
    forged = json.loads(line) | {"hash": "f" * 64}
    path = tmp_path / "forged.jsonl"
    path.write_text(json.dumps(forged) + "\n", encoding="utf-8")
    refused = cli(["audit", "verify", "--checkpoint", str(path), "--public-key", public], env)
    assert refused.returncode == 1
    assert "is not signed by that public key" in refused.stderr
    rewritten = cli(["audit", "verify", "--checkpoint", f"{forged['seq']}:{'f' * 64}"], env)
    assert rewritten.returncode == 1
    assert "the trail was rewritten after the checkpoint" in rewritten.stderr
    bad = cli(["audit", "verify", "--checkpoint", "12:nothex"], env)
    assert bad.returncode == 1 and "write a checkpoint as SEQ:HASH" in bad.stderr
    not_hex = cli(["audit", "verify", "--checkpoint", f"1:{'g' * 64}"], env)
    assert not_hex.returncode == 1 and "write a checkpoint as SEQ:HASH" in not_hex.stderr

    # A public key vouches only for signed checkpoints: a bare SEQ:HASH or a line whose
    # signature was taken out is refused, not silently accepted as checked.
    real = json.loads(line)
    anchor = f"{real['seq']}:{real['hash']}"
    bare = cli(["audit", "verify", "--checkpoint", anchor, "--public-key", public], env)
    assert bare.returncode == 1 and "carries no signature" in bare.stderr, bare.stderr
    stripped = tmp_path / "stripped.jsonl"
    stripped.write_text(json.dumps({**real, "signature": None}) + "\n", encoding="utf-8")
    unsigned = cli(["audit", "verify", "--checkpoint", str(stripped), "--public-key", public], env)
    assert unsigned.returncode == 1 and "carries no signature" in unsigned.stderr
    trusted = cli(["audit", "verify", "--checkpoint", anchor], env)
    assert trusted.returncode == 0, trusted.stderr


def test_audit_policy_prints_the_configuration_a_run_followed(tmp_path: Path) -> None:
    """The fingerprint in run.started names a stored document that hashes to it."""
    env = setup(tmp_path)
    rows(tmp_path, 1)
    done = cli(["run", "--once"], env)
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    started = [e for e in logged if e["event"] == "run.started" and e["customer"] == "kdv-a"]
    policy = started[0]["policy"]
    shown = cli(["audit", "policy", policy], env)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["customer"] == "kdv-a" and document["choices"]["tenant"] == 1
    assert f"1 run(s) followed policy {policy}" in cli(["audit", "verify"], env).stdout
    unknown = cli(["audit", "policy", "sha256:" + "0" * 64], env)
    assert unknown.returncode == 2 and "no policy" in unknown.stderr

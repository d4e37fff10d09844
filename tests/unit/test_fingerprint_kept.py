"""The kept parts of `policy_text` (worker/fingerprint.py) never go stale: more mappings than
are kept, objects dropped and their ids reused, two configurations alive at once, a mapping
paired with another configuration's catalogue, non-ASCII text, and threads. Each text is the
canonical JSON of `policy_document` for the same objects."""

from __future__ import annotations

import threading
from pathlib import Path

from tests import kidsapp
from worker.audit import canonical_json
from worker.config import Catalogue, Customer, ProductMapping
from worker.configload import Config, load_config
from worker.fingerprint import _SHARED_KEPT, policy_document, policy_text


def loaded(folder: Path) -> Config:
    config = load_config(kidsapp.write_config(folder))
    config.raise_for_problems()
    return config


def expected(catalogue: Catalogue, customer: Customer, mapping: ProductMapping) -> str:
    return canonical_json(policy_document(catalogue, customer, mapping))


def test_more_mappings_than_are_kept_each_give_their_own_text(tmp_path: Path) -> None:
    """Twice the kept number of mappings (batch sizes 1..128), asked in turn three times: the
    oldest parts are dropped and built again, and every answer is its own mapping's text."""
    config = loaded(tmp_path)
    customer, mapping = next(iter(config.pairs()))
    mappings = [
        mapping.model_copy(update={"batch_size": n}) for n in range(1, 2 * _SHARED_KEPT + 1)
    ]
    texts = {expected(config.catalogue, customer, m) for m in mappings}
    assert len(texts) == len(mappings)
    for _ in range(3):
        for m in mappings:
            assert policy_text(config.catalogue, customer, m) == expected(
                config.catalogue, customer, m
            )


def test_a_dropped_mappings_id_reused_by_another_gives_the_new_text(tmp_path: Path) -> None:
    """Mappings with batch sizes 1, 2, ... are asked and dropped (each freed once the kept
    parts let it go) until new ones land on dropped ones' ids (CPython reuses freed
    memory): each text is its own mapping's, not the dropped one's."""
    config = loaded(tmp_path)
    customer, base = next(iter(config.pairs()))
    dropped: set[int] = set()
    reused = 0
    for n in range(1, 400):
        mapping = base.model_copy(update={"batch_size": n})
        if id(mapping) in dropped:
            reused += 1
        text = policy_text(config.catalogue, customer, mapping)
        assert text == expected(config.catalogue, customer, mapping)
        assert f'"batch_size":{n},' in text
        dropped.add(id(mapping))
        del mapping  # freed once the kept parts drop it (reference counting)
        if reused >= 3:
            break
    assert reused  # the id of a dropped mapping was met again


def test_two_configurations_alive_and_crossed_keep_apart(tmp_path: Path) -> None:
    """A reload while the old configuration lives on (the daemon's run still holds it), with
    a changed catalogue label in non-ASCII text and another batch size: each pair's text
    follows its own objects, also a mapping of one paired with the other's catalogue."""
    old = loaded(tmp_path / "old")
    new = loaded(tmp_path / "new")
    entry = new.catalogue.products[kidsapp.PRODUCT].model_copy(
        update={"label": "Kïnder-App ✓ 子供", "annex": "Ⅸ"}
    )
    catalogue = new.catalogue.model_copy(
        update={"products": {**new.catalogue.products, kidsapp.PRODUCT: entry}}
    )
    customer, old_mapping = next(iter(old.pairs()))
    new_mapping = next(iter(new.pairs()))[1].model_copy(update={"batch_size": 7})
    pairs = [
        (old.catalogue, old_mapping),
        (catalogue, new_mapping),
        (catalogue, old_mapping),
        (old.catalogue, new_mapping),
    ]
    for _ in range(2):
        texts = [policy_text(c, customer, m) for c, m in pairs]
        assert texts == [expected(c, customer, m) for c, m in pairs]
        assert len(set(texts)) == 4
    assert "Kïnder-App ✓ 子供" in texts[1] and "\\u" not in texts[1]


def test_threads_asking_at_once_each_get_their_pairs_text(tmp_path: Path) -> None:
    """8 threads ask for 80 mappings (more than are kept) in different orders at once: every
    answer is the text of the objects asked about."""
    config = loaded(tmp_path)
    pairs = list(config.pairs())
    mappings = [pairs[0][1].model_copy(update={"batch_size": n}) for n in range(1, 81)]
    customers = [c for c, _ in pairs]
    wanted = {
        (i, j): expected(config.catalogue, c, m)
        for i, m in enumerate(mappings)
        for j, c in enumerate(customers)
    }
    wrong: list[tuple[int, int]] = []
    start = threading.Barrier(8)

    def ask(offset: int) -> None:
        start.wait()
        for round_ in range(3):
            for step in range(len(mappings)):
                i = (step * (offset + 1) + round_) % len(mappings)
                for j, c in enumerate(customers):
                    if policy_text(config.catalogue, c, mappings[i]) != wanted[(i, j)]:
                        wrong.append((i, j))

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []

"""The location service (RFC 3261 §10.3), the same behaviour from every store."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sipactors.store import Binding, MemoryStore, Put, Remove, RemoveAll, Source, SqliteStore

Store = MemoryStore | SqliteStore
AOR = "sip:bob@biloxi.com"


def binding(contact: str, expires: float = 3600.0, q: float | None = None, updated: float = 0.0, **fields: object) -> Binding:
    values: dict[str, object] = {"call_id": "843817637684230@998sdasdh09", "cseq": 1826, **fields}
    return Binding(aor=AOR, contact=contact, expires=expires, q=q, updated=updated, **values)  # type: ignore[arg-type]


def test_a_binding_comes_back_with_every_field(store: Store) -> None:
    full = binding(
        "sip:bob@192.0.2.4;transport=tcp", q=0.7, updated=12.5,
        contact_header='<sip:bob@192.0.2.4;transport=tcp>;q=0.7;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1;video',
        path=("sip:edge1.biloxi.com;lr", "sip:edge2.biloxi.com;lr"),
        instance='"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"', reg_id=1,
        params=(("q", "0.7"), ("+sip.instance", '"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'), ("reg-id", "1"), ("video", None)),
        source=Source("tcp", "198.51.100.7", 49152),
    )
    store.locations.put(full)
    assert store.locations.bindings(AOR, now=0.0) == [full]


def test_put_replaces_the_binding_whose_contact_uri_is_equal_rfc3261_10_3_step_6(store: Store) -> None:
    store.locations.put(binding("sip:bob@Client.Biloxi.com:5060", cseq=1))
    store.locations.put(binding("sip:bob@client.biloxi.com:5060;transport=udp;newparam=1", cseq=2))
    assert len(store.locations.bindings(AOR, 0.0)) == 2  # transport in one only: a different binding
    store.locations.remove_all(AOR)
    store.locations.put(binding("sip:bob@Client.Biloxi.com:5060", cseq=1))
    store.locations.put(binding("sip:bob@client.biloxi.com:5060;newparam=1", cseq=2))
    (only,) = store.locations.bindings(AOR, 0.0)
    assert only.cseq == 2 and only.contact == "sip:bob@client.biloxi.com:5060;newparam=1"


def test_put_keeps_bindings_of_other_contacts_and_other_aors(store: Store) -> None:
    store.locations.put(binding("sip:bob@192.0.2.4"))
    store.locations.put(binding("sip:bob@192.0.2.4:5060"))  # a port where the other has none: not equal
    store.locations.put(replace(binding("sip:bob@192.0.2.4"), aor="sip:alice@atlanta.com"))
    assert [b.contact for b in store.locations.bindings(AOR, 0.0)] == ["sip:bob@192.0.2.4", "sip:bob@192.0.2.4:5060"]
    assert len(store.locations.bindings("sip:alice@atlanta.com", 0.0)) == 1
    assert store.locations.bindings("sip:carol@chicago.com", 0.0) == []


def test_remove_takes_the_equal_contact_only_and_counts(store: Store) -> None:
    store.locations.put(binding("sip:bob@192.0.2.4"))
    store.locations.put(binding("sip:bob@192.0.2.5"))
    assert store.locations.remove(AOR, "sip:bob@192.0.2.4;ob") == 1  # ob in one only: ignored, still equal
    assert store.locations.remove(AOR, "sip:bob@192.0.2.4") == 0
    assert [b.contact for b in store.locations.bindings(AOR, 0.0)] == ["sip:bob@192.0.2.5"]
    assert store.locations.remove_all(AOR) == 1
    assert store.locations.bindings(AOR, 0.0) == [] and store.locations.all_aors(0.0) == []


def test_a_binding_expires_at_its_expiry_time_and_purge_deletes_it(store: Store) -> None:
    store.locations.put(binding("sip:bob@192.0.2.4", expires=100.0))
    store.locations.put(binding("sip:bob@192.0.2.5", expires=200.0))
    store.locations.put(replace(binding("sip:alice@192.0.2.6", expires=100.0), aor="sip:alice@atlanta.com"))
    assert len(store.locations.bindings(AOR, 99.999)) == 2
    assert [b.contact for b in store.locations.bindings(AOR, 100.0)] == ["sip:bob@192.0.2.5"]
    assert store.locations.all_aors(100.0) == [AOR]
    assert store.locations.all_aors(99.0) == ["sip:alice@atlanta.com", AOR]
    assert store.locations.purge(150.0) == 2
    assert store.locations.purge(150.0) == 0
    assert store.locations.all_aors(0.0) == [AOR]  # purged ones are gone even for an earlier "now"
    assert store.locations.remove(AOR, "sip:bob@192.0.2.4") == 0


def test_bindings_come_highest_q_first_then_most_recent(store: Store) -> None:
    store.locations.put(binding("sip:a@192.0.2.1", q=0.1, updated=5.0))
    store.locations.put(binding("sip:b@192.0.2.1", q=None, updated=1.0))  # no q: counts as 1.0
    store.locations.put(binding("sip:c@192.0.2.1", q=0.5, updated=1.0))
    store.locations.put(binding("sip:d@192.0.2.1", q=0.5, updated=3.0))
    store.locations.put(binding("sip:e@192.0.2.1", q=1.0, updated=2.0))
    assert [b.contact[4] for b in store.locations.bindings(AOR, 0.0)] == ["e", "b", "d", "c", "a"]


def test_apply_carries_out_one_register_in_order(store: Store) -> None:
    store.locations.put(binding("sip:old@192.0.2.1"))
    store.locations.apply(AOR, [RemoveAll(), Put(binding("sip:new@192.0.2.2")), Put(binding("sip:two@192.0.2.3")),
                                Remove("sip:two@192.0.2.3")])
    assert [b.contact for b in store.locations.bindings(AOR, 0.0)] == ["sip:new@192.0.2.2"]


@pytest.mark.parametrize("bad", [
    Put(replace(binding("sip:x@192.0.2.9"), aor="sip:alice@atlanta.com")),  # another AOR's binding
    Put(binding("not a uri at all")),
    Remove("<sip:x@192.0.2.9>"),
])
def test_an_error_in_the_middle_of_apply_leaves_the_previous_state(store: Store, bad: object) -> None:
    before = [binding("sip:a@192.0.2.1", q=0.5), binding("sip:b@192.0.2.2")]
    for each in before:
        store.locations.put(each)
    with pytest.raises(ValueError):
        store.locations.apply(AOR, [RemoveAll(), Put(binding("sip:c@192.0.2.3")), bad])  # type: ignore[list-item]
    assert store.locations.bindings(AOR, 0.0) == [before[1], before[0]]
    store.locations.put(binding("sip:c@192.0.2.3"))  # and the store still works
    assert len(store.locations.bindings(AOR, 0.0)) == 3


def test_a_binding_refuses_what_rfc3261_forbids() -> None:
    with pytest.raises(ValueError):
        binding("sip:a@192.0.2.1", q=1.5)
    with pytest.raises(ValueError):
        Binding(aor="", contact="sip:a@192.0.2.1", expires=1.0, call_id="c", cseq=1)


def test_remove_expired_spares_a_later_binding_of_the_same_contact_rfc3261_10_2_2(store: Store) -> None:
    """A binding's actor removes its binding when the interval runs out; a refresh committed since (a later
    expiry) stays, and so do other contacts."""
    store.locations.put(binding("sip:bob@192.0.2.4", expires=100.0))
    store.locations.put(binding("sip:bob@192.0.2.5", expires=100.0))
    assert store.locations.remove_expired(AOR, "sip:bob@192.0.2.4", 99.0) == 0  # not yet: its expiry is 100
    assert store.locations.remove_expired(AOR, "sip:bob@192.0.2.4;ob", 100.0) == 1  # equal by §19.1.4
    assert [b.contact for b in store.locations.bindings(AOR, 0.0)] == ["sip:bob@192.0.2.5"]
    store.locations.put(binding("sip:bob@192.0.2.5", expires=3700.0, cseq=1827))  # refreshed
    assert store.locations.remove_expired(AOR, "sip:bob@192.0.2.5", 100.0) == 0
    assert [b.cseq for b in store.locations.bindings(AOR, 0.0)] == [1827]


def test_a_batch_commits_each_register_whole_and_alone(store: Store) -> None:
    """Group commit (``apply_batch``): the REGISTERs of one batch share a transaction, but one whose changes
    fail is undone alone (RFC 3261 §10.3 step 7), its error in its place; the others are committed."""
    other = "sip:alice@atlanta.com"
    store.locations.put(binding("sip:bob@192.0.2.9"))
    bad = Put(replace(binding("sip:bob@192.0.2.6"), aor=other))  # a binding of another AOR: refused
    results = store.locations.apply_batch([
        (AOR, [Put(binding("sip:bob@192.0.2.4"))]),
        (AOR, [RemoveAll(), Put(binding("sip:bob@192.0.2.5")), bad]),  # fails after undoing half its work
        (other, [Put(replace(binding("sip:alice@192.0.2.1"), aor=other)), Remove("sip:alice@192.0.2.7")]),
    ])
    assert results[0] is None and isinstance(results[1], ValueError) and results[2] is None
    assert [b.contact for b in store.locations.bindings(AOR, 0.0)] == ["sip:bob@192.0.2.4", "sip:bob@192.0.2.9"]
    assert [b.contact for b in store.locations.bindings(other, 0.0)] == ["sip:alice@192.0.2.1"]
    assert store.locations.apply_batch([]) == []

"""Two people edit the same document offline, then merge without conflicts.

Alice and Bob start from the same shared document: some meeting notes, a few settings, a set
of tags and a like counter. Their laptops then go offline and both keep editing, sometimes
the very same things. When they reconnect, each one sends the other only what the other is
missing (a *diff*), and both end up with exactly the same document, with no merge dialog and
no lost work.

Run it from a checkout (after ``pip install -e .``)::

    python examples/offline_merge.py
"""

from crdtsync import Doc

# ---------------------------------------------------------------------------------------------
# 1. A shared starting point.
# ---------------------------------------------------------------------------------------------
# Every replica (every copy of the document) needs an id of its own; Doc() draws a random
# 64-bit one. Never give two documents the same id, and reuse one only together with the
# whole state it produced (a program that lost its saved document starts with a fresh Doc():
# see docs/consistency.md).
alice = Doc()

# A document holds named containers. Asking for a name creates it the first time and returns
# the same object afterwards.
notes = alice.text("notes")  # collaborative text
settings = alice.map("settings")  # key -> value, the last write wins
tags = alice.set("tags")  # a set where a concurrent add beats a remove
likes = alice.counter("likes")  # a counter everyone can bump at the same time

# Edits made inside one transaction travel together as one update.
with alice.transaction():
    notes.insert(
        0,
        "Agenda for the v1 launch meeting.\n"
        "1. Freeze the API and tag the release candidate.\n"
        "2. Write the migration guide and the changelog.\n"
        "3. Benchmarks: compare with the previous release.\n"
        "Plan: ship v1 on Friday.",
    )
    settings["theme"] = "light"
    tags.add("draft")
    likes.increment(3)

# Bob gets a copy of the whole document: get_update() with no argument is the full state.
bob = Doc()
bob.apply_update(alice.get_update())
print("shared start (bob's copy):")
for line in str(bob.text("notes")).splitlines():
    print("   ", line)
print()

# ---------------------------------------------------------------------------------------------
# 2. Offline: both edit, unaware of each other.
# ---------------------------------------------------------------------------------------------
# Alice appends a sentence, switches to the dark theme, marks the doc urgent and drops the
# "draft" tag, and likes it once more.
with alice.transaction():
    notes.insert(len(notes), " Bring snacks.")
    settings["theme"] = "dark"
    tags.add("urgent")
    tags.discard("draft")
    likes.increment()

# Bob moves the deadline (replacing "Friday" with "Monday"), picks a different theme and a
# font size, asks for a review and also likes it twice. He re-adds "draft" too; he did not
# see Alice remove it.
bob_notes = bob.text("notes")
with bob.transaction():
    friday = str(bob_notes).index("Friday")
    bob_notes.delete(friday, len("Friday"))
    bob_notes.insert(friday, "Monday")
    bob.map("settings")["theme"] = "solarized"
    bob.map("settings")["font_size"] = 14
    bob.set("tags").add("review")
    bob.set("tags").add("draft")
    bob.counter("likes").increment(2)

# Only the last line of the notes changed, so that is all we print.
print("alice offline, last line:", repr(str(notes).splitlines()[-1]))
print("bob offline, last line:  ", repr(str(bob_notes).splitlines()[-1]))

# ---------------------------------------------------------------------------------------------
# 3. Back online: exchange only what the other side lacks.
# ---------------------------------------------------------------------------------------------
# A version vector says, for each replica, how many of its changes this document has seen.
# Each side sends its version (a few bytes); the other answers with get_update(version): just
# the changes missing from that version, not the whole document.
to_bob = alice.get_update(bob.version)
to_alice = bob.get_update(alice.version)
whole = alice.get_update()
print(
    f"\nversion vectors: {len(alice.version.encode())} + {len(bob.version.encode())} bytes; "
    f"diffs: alice->bob {len(to_bob)} bytes, bob->alice {len(to_alice)} bytes "
    f"(alice's whole state: {len(whole)} bytes)"
)

# Applying an update is safe in any order, and applying the same one twice changes nothing.
bob.apply_update(to_bob)
alice.apply_update(to_alice)
alice.apply_update(to_alice)  # a duplicate delivery: harmless

# ---------------------------------------------------------------------------------------------
# 4. The result: identical on both sides.
# ---------------------------------------------------------------------------------------------
# - text: both edits survive, Alice's sentence and Bob's new deadline;
# - settings: Alice and Bob both set "theme" concurrently; one deterministic winner that every
#   replica agrees on, while Bob's unrelated "font_size" is kept;
# - tags: Alice removed "draft" while Bob (concurrently) added it: add wins, "draft" stays;
# - likes: 3 + 1 + 2, every increment counts.
for name, doc in (("alice", alice), ("bob", bob)):
    print(f"\n{name}:")
    print("  notes:   ", repr(str(doc.text("notes")).splitlines()[-1]), "(last line)")
    print("  settings:", dict(doc.map("settings")))
    print("  tags:    ", sorted(doc.set("tags"), key=repr))
    print("  likes:   ", doc.counter("likes").value)


def state(doc: Doc) -> tuple[str, dict[str, object], list[object], int]:
    return (
        str(doc.text("notes")),
        dict(doc.map("settings")),
        sorted(doc.set("tags"), key=repr),
        doc.counter("likes").value,
    )


assert state(alice) == state(bob), "replicas diverged"
assert alice.version == bob.version
print("\nalice and bob converged")

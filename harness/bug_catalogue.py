"""The seeded-bug catalogue in full: what each switch changes, its history, its minimal scenario
and the properties that catch it.

Rules of this module:
- This is the one long account of every bug in `impl/bugs.py` (whose entries
  carry the one-line description). `kafka-verify bugs --long` prints
  `render_markdown()`, and `docs/bugs.md` is the same text, kept equal by a test.
- `caught_by` is what the CI campaign reports when it catches the bug; the
  quality tests (`tests/quality/`) hold the campaign to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka_verify.impl.bugs import BUGS
from kafka_verify.model.variants import PROTOCOL_VARIANTS


@dataclass(frozen=True, slots=True)
class BugStory:
    """One bug told in full."""

    name: str
    area: str
    switch: str  # what the switch changes in the reference broker
    history: str  # the Kafka ticket, KIP or setting it comes from
    scenario: str  # the minimal failure, step by step
    caught_by: frozenset[str]  # the properties the CI campaign reports for it


STORIES: tuple[BugStory, ...] = (
    BugStory(
        "truncate-to-hw",
        "Replication",
        "A follower that starts following, or restarts, cuts its log back to its own "
        "high watermark instead of asking the leader where their logs part.",
        "Kafka before KIP-101 (replication protocol of 0.10 and earlier).",
        "RF 2, B leads and A follows. A fetches record m2 and B commits it, but A learns "
        "the new high watermark only on its next fetch. A restarts and truncates to its "
        "stale high watermark, dropping m2. B fails and A is elected: a committed record "
        "is gone. The model's shortest path is 7 actions; the campaign sees A cut its log "
        "at the restart, before it has learned its role, a step the protocol does not allow.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "epoch-end-offset-hole",
        "Replication",
        "Truncation uses the leader's answer to OffsetsForLeaderEpoch, but the follower "
        "trusts the end offset without checking that the leader holds the epoch it asked "
        "about, so it may keep records the leader never had at those offsets.",
        "KIP-101's epoch lookup, the hole that KIP-279 closed.",
        "Two leader changes in quick succession: a replica that led briefly keeps a record "
        "of its own epoch, asks the next leader for that epoch's end offset, gets the end "
        "of a later epoch and keeps its record. Two replicas then hold different records "
        "at one offset below the high watermark, forever. The model's shortest path is 10 "
        "actions; the campaign sees the truncation that keeps the record, where the protocol "
        "dictates a deeper cut.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "no-fetch-epoch-fencing",
        "Replication",
        "The leader answers Fetch and OffsetsForLeaderEpoch without checking the leader "
        "epoch the requester believes in, so a replica acting on stale metadata keeps "
        "fetching, truncates against another epoch's log, or rejoins the ISR.",
        "Kafka before KIP-320 (KAFKA-6880); the public spec's Kip320FirstTry module.",
        "A follower that missed a leader change fetches from the old leader, which answers; "
        "the follower appends records of a log that the new leader has already cut. The "
        "model's shortest path is 13 actions; the campaign sees the broker take a fetch "
        "step the protocol does not allow.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "unclean-election",
        "Replication",
        "With no ISR member alive, the controller elects a live replica outside the ISR.",
        "Kafka's `unclean.leader.election.enable=true`.",
        "RF 3, min ISR 2: the ISR shrinks to the leader, which commits a record and "
        "crashes; the controller elects a lagging follower, and the committed record is "
        "lost. The model's shortest path is 5 actions.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "hw-ahead-of-isr",
        "Replication",
        "The leader advances the high watermark over the followers that fetched recently, "
        "not over the whole ISR.",
        "The high-watermark rule of Kafka's replication protocol.",
        "An ISR follower stops fetching (partitioned or slow) but stays in the ISR; the "
        "leader commits a record the follower lacks, then the follower is elected. The "
        "model's shortest path is 4 actions.",
        frozenset({"log-agreement"}),
    ),
    BugStory(
        "ack-before-commit",
        "Replication",
        "acks=all is answered as soon as the leader appends, even while the ISR is smaller "
        "than min.insync.replicas.",
        "The acks=all contract with min.insync.replicas.",
        "The ISR shrinks to the leader alone; a producer's acks=all write is acknowledged "
        "before any follower holds it, then the leader crashes and the acknowledged write "
        "is gone.",
        # The write the model forbids, or, when the early answer came with a full ISR, its
        # damage seen by the producer: the acknowledged offset is given to another record.
        frozenset({"refinement", "inconsistent-offsets"}),
    ),
    BugStory(
        "stale-leader-accepts-writes",
        "Replication",
        "ISR changes written to the coordination service are not fenced by leader epoch, "
        "so a deposed leader that has not seen the new epoch still shrinks the ISR and "
        "acknowledges writes.",
        "Leader-epoch fencing of ISR updates (the KIP-320 line of fixes).",
        "The leader is cut off, a new leader is elected, and the old one, unaware, shrinks "
        "the ISR to itself and acknowledges a write: two leaders in effect.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "read-uncommitted",
        "Replication",
        "Consumer fetches are served up to the log end offset instead of the high watermark.",
        "Kafka serves consumers only committed data (the high watermark).",
        "A consumer reads a record that only the leader holds; the leader crashes and the "
        "new leader never had it. The consumer saw a record that was never committed.",
        frozenset({"committed-read"}),
    ),
    BugStory(
        "duplicate-offset",
        "Replication",
        "After its log is truncated, a replica keeps numbering new records from the old log "
        "end, so answers give offsets that are assigned twice or leave a gap.",
        "Offset assignment after truncation (the leader's next offset is its log end).",
        "A replica that led and was truncated leads again and answers a produce with an "
        "offset beyond its log end; the same record is reported at two offsets.",
        frozenset({"duplicate", "inconsistent-offsets"}),
    ),
    BugStory(
        "controller-split-brain",
        "Replication",
        "A deposed controller keeps electing leaders and sending LeaderAndIsr, unfenced by "
        "the controller epoch.",
        "Controller epoch fencing (KIP-380 and the ZooKeeper-era controller).",
        "The controller loses its lease while partitioned; a new controller elects a "
        "leader, and the old one elects another for the same partition: two brokers lead.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "leader-counts-unflushed",
        "Replication",
        "The leader advances the high watermark to the smallest log end among the ISR, its "
        "own included, without first flushing what it appended: it counts records it holds "
        "only in memory as replicated to itself.",
        "Kafka's own design (acks=all waits for the ISR's fetches, not for an fsync), whose "
        "cost shows when the ISR shrinks to the leader: a crash of a one-replica ISR loses "
        "acknowledged records (KAFKA-3410-era data-loss reports, min.insync.replicas advice).",
        "RF 3: a group coordinator appends two offset-commit records, its followers fetch "
        "them, and on their next fetch its high watermark passes them, unflushed. It crashes "
        "on that event and loses them: an ISR member lacks records the partition committed. "
        "With the ISR shrunk to the leader alone, no other replica holds them at all.",
        frozenset({"log-agreement"}),
    ),
    BugStory(
        "fetch-before-flush",
        "Replication",
        "A follower sends its next fetch, whose offset tells the leader how far it has "
        "replicated, before it flushes the records it just appended.",
        "The follower half of the durability contract: the fetch offset is what the leader "
        "counts toward the high watermark and ISR membership (Kafka relies on replication, "
        "so the same gap opens when every ISR member loses power at once).",
        "RF 3: both followers append a record and fetch again at once, advertising it; the "
        "leader commits it. A follower crashes before its flush timer and restarts without "
        "the record, still an ISR member: an ISR member lacks a committed record.",
        frozenset({"log-agreement"}),
    ),
    BugStory(
        "isr-expand-at-hw",
        "Replication",
        "The leader readmits a follower to the ISR as soon as its fetch offset reaches the "
        "leader's high watermark, without also asking it to reach the offset where the "
        "leader's current epoch began.",
        "KAFKA-7128 (lagging high watermark can lead to committed data loss after ISR "
        "expansion), fixed by requiring the follower to reach the start offset of the "
        "leader's current epoch as well.",
        "RF 3: b2 lags out of the ISR; b0 commits record 1 with b1, whose fetch answer "
        "carrying the new high watermark is lost. b0 crashes and b1 leads epoch 1 with high "
        "watermark 0, the committed record being above it. b2 fetches at offset 0, which "
        "reaches that lagging high watermark, and is readmitted without record 1: an ISR "
        "member lacks a committed record, and b2 may be elected next. The campaign's "
        "readmitted-follower nemesis crashes the follower on the event that readmits it.",
        frozenset({"log-agreement"}),
    ),
    BugStory(
        "no-epoch-keeps-log",
        "Replication",
        "A truncating follower whose leader answers that it knows no epoch as old as the "
        "follower's last (no epoch at or below it in its log) keeps its whole log, instead of "
        "falling back to its own high watermark, the only offset it knows committed.",
        "KIP-279 (KAFKA-6361): when OffsetsForLeaderEpoch finds no such epoch (an undefined "
        "epoch end offset), Kafka's fetcher truncates to its initial fetch offset, the high "
        "watermark; a fallback to the log end keeps records that no leader vouched for.",
        "RF 3: b0 leads epoch 0 and appends record 1, which no follower fetches. b0 bounces, "
        "keeping it, and b1 leads epoch 1 with an empty log. b0 asks b1 for the end of epoch "
        "0; b1 has no epoch that old and says so. Correct: b0 cuts to its high watermark, 0. "
        "With the bug it keeps record 1 at offset 0, which b1 fills with another record. The "
        "exact truncation rule dictates the cut to 0, so refinement fails on the very "
        "truncation step.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "fetch-before-recovery",
        "Replication",
        "A restarted follower's first fetch names the log end its segment metadata recorded "
        "before the crash, before recovery cut the records it had never flushed, so the "
        "leader counts it as holding records it lost.",
        "No ticket of its own: the mistake log recovery exists to prevent (Kafka recomputes "
        "the log end from the segments after an unclean shutdown, and a follower fetches "
        "from the end of the log it recovered). A fetch offset is what the leader counts "
        "toward the high watermark, so it must name only what the follower holds.",
        "RF 3: b0 leads and appends record 1; both followers fetch it and b0 crashes on that "
        "event, before it flushed. It restarts at once without the record, still in the ISR, "
        "and follows b1. Its first fetch names offset 1; b1 counts it and commits record 1 "
        "while b0, an ISR member, lacks it. The campaign's nemeses crash a leader on the "
        "event a follower appends from it, and crash a broker again while it restarts.",
        frozenset({"log-agreement", "hw-within-isr"}),
    ),
    BugStory(
        "non-idempotent-retry",
        "Producers and retention",
        "The leader appends a retried record again instead of deduplicating it by the "
        "producer's id and sequence number.",
        "KIP-98 idempotent producers.",
        "A produce is appended but its answer is lost; the producer retries and the record "
        "is appended a second time.",
        frozenset({"no-duplicate-record"}),
    ),
    BugStory(
        "retention-deletes-unreplicated",
        "Producers and retention",
        "Retention deletes up to the log end offset, the active segment included, instead "
        "of only whole segments below the high watermark.",
        "Log retention (`retention.ms`, `retention.bytes`) never deletes uncommitted data.",
        "Retention runs on the leader while a follower lags: records no consumer could read "
        "yet are deleted, and the log start moves past the high watermark.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "zombie-commit",
        "Consumer groups",
        "The group coordinator accepts an OffsetCommit from a member of an older generation.",
        "Generation fencing of OffsetCommit (ILLEGAL_GENERATION).",
        "A member is expired and the group rebalances; the expired member, unaware, "
        "commits an old position, and the group's committed offset goes backwards. The "
        "model's shortest path is 7 actions.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "double-assignment",
        "Consumer groups",
        "A member that rejoins keeps the partitions of its old generation instead of "
        "revoking them first, so a rebalance can leave one partition with two owners.",
        "The eager rebalance protocol's revoke-before-join.",
        "A member's SyncGroup arrives late; it rejoins still claiming its old partitions, "
        "and the new assignment gives one of them to another member. The model's shortest "
        "path is 7 actions.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "offsets-in-memory",
        "Consumer groups",
        "Committed offsets are kept only in the coordinator's memory, not written to the "
        "replicated offsets topic.",
        "Offsets in the internal `__consumer_offsets` topic (Kafka 0.8.2 and later).",
        "A consumer commits; the coordinator's broker fails and another takes the group "
        "over with no committed offsets, so the consumer restarts from an earlier position.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "no-generation-fencing-on-fetch",
        "Consumer groups",
        "A consumer whose session may have lapsed at the coordinator keeps fetching and "
        "committing until the coordinator tells it, instead of giving up its partitions by "
        "its own clock.",
        "Session expiry and the consumer's own poll and session timeouts.",
        "The consumer's coordinator traffic is dropped; the coordinator expires it and "
        "gives its partition to another member, and both read the partition at once.",
        frozenset({"poll-by-non-owner"}),
    ),
    BugStory(
        "offsets-loaded-to-hw",
        "Consumer groups",
        "A broker that becomes leader of an offsets partition loads only the commit records "
        "below its own high watermark, not every commit that took effect, although a new "
        "leader's high watermark lags its predecessor's until its followers fetch again.",
        "An early transaction-state loader of Kafka (0.11 development) read its partition "
        "only `while (currOffset < highWaterMark)`, the new leader's high watermark; Kafka's "
        "loaders read to the log end. A new leader's high watermark lags the old leader's "
        "(the lag behind KAFKA-7128), so records that already took effect can lie above it.",
        "RF 3: a consumer commits; both followers fetch the commit record, the coordinator's "
        "high watermark passes it, the commit takes effect and is answered, but the fetch "
        "answers that would tell the followers the new high watermark are lost. The "
        "coordinator crashes; a follower leads the offsets partition with the record in its "
        "log above its high watermark, and loads the group without the acknowledged commit. "
        "Refinement fails on the load. The campaign's coordinator nemesis crashes the "
        "coordinator on exactly that event.",
        frozenset({"refinement"}),
    ),
    # -- broad variants of the group bugs: the more general mistake behind each one above --
    BugStory(
        "unfenced-offset-commit",
        "Consumer groups",
        "The group coordinator takes an OffsetCommit as it comes: it checks neither that the "
        "sender is a member, nor its generation, nor that the group is Stable, nor that the "
        "sender owns the partitions it commits. `zombie-commit` is its one case of an older "
        "generation.",
        "OffsetCommit fencing as a whole (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, "
        "REBALANCE_IN_PROGRESS), which coordinators once applied only in part.",
        "A member has read a record when a second consumer joins. Told by its heartbeat that "
        "the group is rebalancing, it commits its position before it rejoins, and the "
        "coordinator applies the commit while the group assigns nothing to anyone: an offset "
        "set by a member that owns no partition.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "ownership-never-revoked",
        "Consumer groups",
        "The coordinator never clears what a member was told it owns: a member that rejoins "
        "keeps its old partitions (as in `double-assignment`), and so does one that leaves, "
        "so whatever it is given next is added to them.",
        "The eager rebalance protocol's revocation: a member gives up every partition before "
        "it rejoins and when it leaves.",
        "A lone member owns the group's partition and leaves; the group is empty, yet in the "
        "coordinator's record the member still owns the partition.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "commit-before-replication",
        "Consumer groups",
        "An offset commit takes effect, and is answered, as soon as the coordinator appends "
        "its record to the offsets partition, before the high watermark passes it, and is "
        "taken even when the partition's ISR is below min.insync.replicas. `offsets-in-memory` "
        "is its extreme: a record that is never written.",
        "`offsets.commit.required.acks` (acks=all for the offsets topic, the default since "
        "Kafka 0.8.2).",
        "A consumer commits while the coordinator's followers are cut off; the coordinator's "
        "broker crashes, losing its unflushed log, and the commit it applied and answered is "
        "gone from the offsets topic.",
        frozenset({"refinement"}),
    ),
    BugStory(
        "session-from-unanswered-heartbeat",
        "Consumer groups",
        "A consumer's own session clock counts from the last heartbeat it sent, answered or "
        "not, so a consumer whose heartbeats are lost believes its session alive and keeps "
        "fetching. `no-generation-fencing-on-fetch` is its extreme: no clock at all.",
        "The consumer side of the session timeout: only a heartbeat the coordinator answered "
        "proves the session (KIP-62's background heartbeat).",
        "The consumer's requests to its coordinator are lost while its fetches still reach "
        "the partition leader. It keeps sending heartbeats; the coordinator expires it and "
        "gives its partition to another member, and both read the partition.",
        frozenset({"poll-by-non-owner"}),
    ),
)


def render_markdown() -> str:
    """The whole catalogue as Markdown: docs/bugs.md, and `kafka-verify bugs --long`."""
    lines = [
        "# The seeded-bug catalogue",
        "",
        "Each entry is a switch in the reference broker (`impl/bugs.py`), off by default,",
        "that brings back one historical mistake. `kafka-verify run --bug NAME` runs the",
        "campaign against it, and `kafka-verify mutants` checks that the campaign catches",
        "every one. A protocol variant is a bug that also lives in the model",
        "(`model/variants.py`): `kafka-verify prove --bug NAME` finds it there, at minimal",
        "depth. This file is generated from `harness/bug_catalogue.py`",
        "(`kafka-verify bugs --long`).",
    ]
    area = ""
    for story in STORIES:
        if story.area != area:
            area = story.area
            lines += ["", f"## {area}"]
        variant = " Also a protocol variant." if story.name in PROTOCOL_VARIANTS else ""
        lines += [
            "",
            f"### `{story.name}`",
            "",
            f"{BUGS[story.name].description[0].upper()}{BUGS[story.name].description[1:]}.",
            "",
            f"- **The switch:** {story.switch}",
            f"- **History:** {story.history}",
            f"- **Minimal scenario:** {story.scenario}",
            f"- **Caught by:** {', '.join(f'`{p}`' for p in sorted(story.caught_by))}.{variant}",
        ]
    return "\n".join(lines) + "\n"

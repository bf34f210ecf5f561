"""Signed checkpoints of the audit chain: evidence kept away from the database.

A checkpoint records the chain's head — event id, link hash, time — and its prune anchor, signed with an Ed25519
key the database never sees (``SOFIIA_AUDIT_SIGNING_KEY``), like Certificate Transparency's
signed tree heads or CloudTrail's digest files. ``manage.py audit_checkpoint`` writes one,
from cron, to a directory or to stdout for a SIEM. Later, ``verify_audit --checkpoints DIR``
proves with the public key (``SOFIIA_AUDIT_VERIFY_KEY``) that every checkpointed event is
still in the database unchanged: a truncated or emptied trail, a deleted tail with the head
moved back, or a re-hashed event is caught even by someone who could rewrite every table.

Events older than the retention period may be pruned; a checkpointed event that is gone is
a break unless it was old enough to be pruned, and an anchor that is not the checkpoint's
is a break unless a keyed prune record names it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.utils.dateparse import parse_datetime

from audit.chain import ChainLink, anchor_prune_record, chain_anchor, chain_head, format_ts
from audit.models import AuditEvent
from sofiia.lib.clock import clock_now

CHECKPOINT_VERSION = 2
# Version 1 did not sign the anchor's link; its files are still read and checked for the rest.
READABLE_VERSIONS = (1, 2)


class CheckpointKeyError(Exception):
    """A signing or verification key is missing or malformed."""


@dataclass(frozen=True)
class Checkpoint:
    event_id: int
    hash: str
    ts: str | None
    anchor_id: int
    signed_at: str
    key: str  # fingerprint of the public key that verifies the signature
    signature: str = ""
    v: int = CHECKPOINT_VERSION
    anchor_hash: str | None = None  # the prune anchor's link (version 2)

    def payload(self) -> bytes:
        fields = {name: value for name, value in asdict(self).items() if name != "signature"}
        if self.v == 1:
            del fields["anchor_hash"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("v") not in READABLE_VERSIONS:
            raise ValueError(f"not an audit checkpoint of a version this reads ({READABLE_VERSIONS})")
        return cls(
            v=int(data["v"]),
            anchor_hash=str(data["anchor_hash"]) if data["v"] >= 2 else None,
            event_id=int(data["event_id"]),
            hash=str(data["hash"]),
            ts=data["ts"],
            anchor_id=int(data["anchor_id"]),
            signed_at=str(data["signed_at"]),
            key=str(data["key"]),
            signature=str(data["signature"]),
        )


def _load(text: str, *, private: bool) -> Ed25519PrivateKey | Ed25519PublicKey:
    """A key in PEM, or its 32 raw bytes in base64."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = (
                serialization.load_pem_private_key(text.encode(), password=None)
                if private
                else serialization.load_pem_public_key(text.encode())
            )
        else:
            raw = base64.b64decode(text, validate=True)
            key = Ed25519PrivateKey.from_private_bytes(raw) if private else Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise CheckpointKeyError(f"not an Ed25519 {'private' if private else 'public'} key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        raise CheckpointKeyError("the key is not an Ed25519 key")
    return key


def signing_key() -> Ed25519PrivateKey:
    if not settings.SOFIIA_AUDIT_SIGNING_KEY:
        raise CheckpointKeyError("SOFIIA_AUDIT_SIGNING_KEY (or _FILE) is not set")
    key = _load(settings.SOFIIA_AUDIT_SIGNING_KEY, private=True)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def verify_key() -> Ed25519PublicKey:
    """``SOFIIA_AUDIT_VERIFY_KEY``, or the public half of the signing key."""
    if settings.SOFIIA_AUDIT_VERIFY_KEY:
        key = _load(settings.SOFIIA_AUDIT_VERIFY_KEY, private=False)
        assert isinstance(key, Ed25519PublicKey)
        return key
    if settings.SOFIIA_AUDIT_SIGNING_KEY:
        return signing_key().public_key()
    raise CheckpointKeyError("set SOFIIA_AUDIT_VERIFY_KEY (or _FILE) to the checkpoints' public key")


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def new_signing_key_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def checkpoint_make() -> Checkpoint:
    """A signed checkpoint of the chain's head as it is now."""
    key = signing_key()
    head, anchor = chain_head(), chain_anchor()
    event_id, link, ts = (head.event_id, head.hash, head.ts) if head else (anchor.event_id, anchor.hash, anchor.ts)
    unsigned = Checkpoint(
        event_id=event_id,
        hash=link,
        ts=format_ts(ts) if ts else None,
        anchor_id=anchor.event_id,
        anchor_hash=anchor.hash,
        signed_at=format_ts(clock_now()),
        key=key_fingerprint(key.public_key()),
    )
    signature = base64.b64encode(key.sign(unsigned.payload())).decode()
    return Checkpoint(**{**asdict(unsigned), "signature": signature})


def checkpoint_write(checkpoint: Checkpoint, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = checkpoint.signed_at.replace("-", "").replace(":", "").split(".")[0]
    path = directory / f"checkpoint-{checkpoint.event_id:012d}-{stamp}Z.json"
    path.write_text(checkpoint.to_json())
    return path


def checkpoint_problem(checkpoint: Checkpoint, key: Ed25519PublicKey) -> str | None:
    """Why the database no longer matches ``checkpoint``, or ``None`` when it does."""
    try:
        key.verify(base64.b64decode(checkpoint.signature), checkpoint.payload())
    except (InvalidSignature, ValueError, binascii.Error):
        return "its signature does not verify (the checkpoint was forged or altered)"
    head, anchor = chain_head(), chain_anchor()
    last = head.event_id if head else anchor.event_id
    moved = _anchor_problem(checkpoint, anchor, head or anchor)
    if moved is not None:
        return moved
    if checkpoint.event_id > last:
        return (
            f"it vouches for event #{checkpoint.event_id} but the chain ends at #{last} "
            "(events at the end were deleted, or the trail was emptied)"
        )
    if checkpoint.event_id == 0:
        return None
    if checkpoint.event_id <= anchor.event_id:
        if checkpoint.event_id == anchor.event_id:
            return None if anchor.hash == checkpoint.hash else f"the prune anchor (#{anchor.event_id}) was replaced"
        return _pruned_in_time(checkpoint)
    event = AuditEvent.objects.filter(id=checkpoint.event_id).only("id", "hash").first()
    if event is None:
        return f"event #{checkpoint.event_id} is missing (deleted)"
    if event.hash != checkpoint.hash:
        return f"event #{checkpoint.event_id} was replaced (its link differs from the checkpoint's)"
    return None


def _anchor_problem(checkpoint: Checkpoint, anchor: ChainLink, head: ChainLink) -> str | None:
    """Whether the prune anchor can have come from the one ``checkpoint`` signed by pruning."""
    if anchor.event_id < checkpoint.anchor_id:
        return f"the prune anchor moved back from #{checkpoint.anchor_id} to #{anchor.event_id}"
    if anchor.event_id == checkpoint.anchor_id:
        if checkpoint.anchor_hash is not None and checkpoint.anchor_hash != anchor.hash:
            return f"the prune anchor (#{anchor.event_id}) was replaced (its link differs from the checkpoint's)"
        return None
    if anchor_prune_record(anchor, head) is None:
        return (
            f"the prune anchor moved from #{checkpoint.anchor_id} to #{anchor.event_id} with no recorded prune "
            "(the oldest events were deleted and the anchor moved)"
        )
    return None


def _pruned_in_time(checkpoint: Checkpoint) -> str | None:
    ts = parse_datetime(checkpoint.ts) if checkpoint.ts else None
    retention = timedelta(days=settings.SOFIIA_AUDIT_RETENTION_DAYS)
    if ts is not None and isinstance(ts, datetime) and ts < clock_now() - retention:
        return None
    return (
        f"event #{checkpoint.event_id} was removed before its retention period ended "
        "(pruned early, or the anchor was moved)"
    )

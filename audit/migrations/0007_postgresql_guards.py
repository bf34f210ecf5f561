"""What PostgreSQL itself refuses, whoever asks (except a superuser, who can switch triggers off
anyway):

- an UPDATE of an audit event, and a DELETE by anyone but the tables' owner — which, once
  ``manage.py audit_harden`` has handed the tables to an owner role the application does not
  log in as, only ``audit_prune_batch`` runs as;
- a TRUNCATE of the events, the chain head or the prune anchor;
- moving the chain head or the prune anchor backwards, or deleting either;
- pruning anything but the oldest events past the retention cutoff, in order:
  ``audit_prune_batch`` (SECURITY DEFINER) is the one way events leave. It replaces the
  ``sofiia.audit_prune`` setting, which any role could set.
"""

from django.db import migrations

GUARDS_SQL = r"""
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % refused (old events leave only through audit_prune_batch)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE FUNCTION audit_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'TRUNCATE of % refused: the audit trail is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'the audit chain head cannot be deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.last_event_id < OLD.last_event_id THEN
        RAISE EXCEPTION 'the audit chain head only moves forward (from #% to #% refused)',
            OLD.last_event_id, NEW.last_event_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION audit_anchor_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'the audit prune anchor cannot be deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.event_id < OLD.event_id THEN
        RAISE EXCEPTION 'the audit prune anchor only moves forward (from #% to #% refused)',
            OLD.event_id, NEW.event_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_auditchainhead
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_auditchainanchor
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();
CREATE TRIGGER audit_anchor_forward_only BEFORE UPDATE OR DELETE ON audit_auditchainanchor
    FOR EACH ROW EXECUTE FUNCTION audit_anchor_forward_only();

-- Deletes the oldest events older than older_than, at most batch_size of them, and moves the
-- prune anchor to the last one deleted. Only ever a prefix of the chain: it stops at the first
-- event inside the retention window even if older ones follow. Returns how many were deleted,
-- their id range, and whether more may follow.
CREATE OR REPLACE FUNCTION audit_prune_batch(older_than timestamptz, batch_size integer)
RETURNS TABLE (deleted bigint, first_id bigint, last_id bigint, more boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    from_id bigint;
    scanned bigint;
    keep_from bigint;
    cut_first bigint;
    cut_last bigint;
    cut_count bigint;
    cut_hash varchar;
    cut_ts timestamptz;
BEGIN
    IF batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1';
    END IF;
    INSERT INTO audit_auditchainanchor (id, event_id, hash, ts, pruned_total, updated_at)
        VALUES (1, 0, repeat('0', 64), NULL, 0, now())
        ON CONFLICT (id) DO NOTHING;
    SELECT a.event_id INTO from_id FROM audit_auditchainanchor a WHERE a.id = 1 FOR UPDATE;
    WITH candidates AS (
        SELECT e.id, e.ts FROM audit_auditevent e WHERE e.id > from_id ORDER BY e.id LIMIT batch_size
    )
    SELECT count(*), min(c.id) FILTER (WHERE c.ts >= older_than) INTO scanned, keep_from FROM candidates c;
    SELECT min(e.id), max(e.id), count(*) INTO cut_first, cut_last, cut_count
        FROM (SELECT e.id FROM audit_auditevent e WHERE e.id > from_id ORDER BY e.id LIMIT batch_size) e
        WHERE keep_from IS NULL OR e.id < keep_from;
    IF cut_count = 0 THEN
        RETURN QUERY SELECT 0::bigint, NULL::bigint, NULL::bigint, false;
        RETURN;
    END IF;
    SELECT e.hash, e.ts INTO cut_hash, cut_ts FROM audit_auditevent e WHERE e.id = cut_last;
    DELETE FROM audit_auditevent e WHERE e.id BETWEEN cut_first AND cut_last;
    UPDATE audit_auditchainanchor a
        SET event_id = cut_last, hash = cut_hash, ts = cut_ts, pruned_total = a.pruned_total + cut_count,
            updated_at = now()
        WHERE a.id = 1;
    RETURN QUERY SELECT cut_count, cut_first, cut_last, (keep_from IS NULL AND scanned = batch_size);
END
$$;
"""

REMOVE_GUARDS_SQL = r"""
DROP FUNCTION IF EXISTS audit_prune_batch(timestamptz, integer);
DROP TRIGGER IF EXISTS audit_anchor_forward_only ON audit_auditchainanchor;
DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_auditchainhead;
DROP TRIGGER IF EXISTS audit_anchor_no_truncate ON audit_auditchainanchor;
DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_auditchainhead;
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_anchor_forward_only();
DROP FUNCTION IF EXISTS audit_head_forward_only();
DROP FUNCTION IF EXISTS audit_refuse_truncate();
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('sofiia.audit_prune', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % refused (old events leave only through prune_audit)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def install_guards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GUARDS_SQL, params=None)


def remove_guards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REMOVE_GUARDS_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0006_chain_key_id"),
    ]

    operations = [
        migrations.RunPython(install_guards, remove_guards),
    ]

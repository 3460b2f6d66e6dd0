"""On PostgreSQL the database itself refuses to rewrite history: UPDATE and DELETE of events, votes, peer
reviews, test runs, ledger rows and audit entries raise. (SQLite, the one-machine default, has only the app
and the read-only admin between a user and these rows.)

What still works, and why:
- A ledger row is written before the model call and settled after it ("write the row before calling the
  outside world, then update it"): an LLMCall may be updated while it is ``pending``, and once more when
  the reaper gave it up (``error`` starting "Abandoned:") and its answer came after all
  (agents/services.py ``_close``). A settled row is final.
- Nothing deletes these rows. A mission with an event cannot be deleted (its rows would cascade), nor a
  model profile or agent a ledger row names (SET_NULL is an UPDATE); the admin says so before trying
  (audit/mixins.py). Test teardown (pytest-django's flush) uses TRUNCATE, which fires no row trigger.
- A later migration that must rewrite such rows disables the trigger in its own transaction
  (``ALTER TABLE ... DISABLE TRIGGER append_only``) and says why.
"""

from django.db import migrations

TABLES = [
    "missions_event",
    "missions_vote",
    "missions_testrun",
    "reviews_peerreview",
    "audit_auditentry",
]
LEDGER = "agents_llmcall"

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION append_only_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'append-only: % of a row of % is refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'Events, votes, reviews, test runs, ledger rows and audit entries are never changed.';
    END;
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION append_only_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND (OLD.status = 'pending' OR (OLD.status = 'error' AND OLD.error LIKE 'Abandoned:%')) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'append-only: % of a settled row of % is refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'A ledger row changes only while its call is pending.';
    END;
    $$
    """,
    *(
        f"CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION append_only_refuse()"
        for table in TABLES
    ),
    f"CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {LEDGER} FOR EACH ROW EXECUTE FUNCTION append_only_ledger()",
]
BACKWARD = [
    *(f"DROP TRIGGER IF EXISTS append_only ON {table}" for table in [*TABLES, LEDGER]),
    "DROP FUNCTION IF EXISTS append_only_refuse()",
    "DROP FUNCTION IF EXISTS append_only_ledger()",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return  # SQLite: the app and the read-only admin are the guard
        for statement in statements:
            schema_editor.execute(statement, params=None)  # no placeholders: keep the % signs

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("agents", "0009_agents_get_code_tools"),
        ("missions", "0014_event_actor"),
        ("reviews", "0005_peer_review_rounds_and_line_comments"),
    ]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]

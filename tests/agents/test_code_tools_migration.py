"""Agents saved before search_code and edit_file existed get them when the database is migrated."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("agents", "0008_llm_call_bounds")]
AFTER = [("agents", "0009_agents_get_code_tools")]


def test_stored_agents_get_the_code_tools_their_old_tools_imply():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("agents", "AgentSpec")
    writer = old.objects.create(
        name="old-dev",
        title="Developer",
        role="developer",
        system_prompt="p",
        tools=["list_files", "read_file", "write_file", "run_tests", "commit"],
    )
    reader = old.objects.create(name="old-rev", title="Reviewer", role="review", system_prompt="p", tools=["read_file"])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("agents", "AgentSpec")
    assert new.objects.get(pk=writer.pk).tools == [
        "list_files",
        "read_file",
        "search_code",
        "edit_file",
        "write_file",
        "run_tests",
        "commit",
    ]
    assert new.objects.get(pk=reader.pk).tools == ["read_file", "search_code"]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

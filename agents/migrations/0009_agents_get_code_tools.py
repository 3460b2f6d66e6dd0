"""Agents stored before the code tools existed get them: reading agents search, writing agents edit in place."""

from django.db import migrations


def add_code_tools(apps, schema_editor):
    AgentSpec = apps.get_model("agents", "AgentSpec")
    for agent in AgentSpec.objects.exclude(tools=[]):
        tools = list(agent.tools)
        if "read_file" in tools and "search_code" not in tools:
            tools.insert(tools.index("read_file") + 1, "search_code")
        if "write_file" in tools and "edit_file" not in tools:
            tools.insert(tools.index("write_file"), "edit_file")
        if tools != agent.tools:
            agent.tools = tools
            agent.save(update_fields=["tools"])


class Migration(migrations.Migration):
    dependencies = [("agents", "0008_llm_call_bounds")]
    operations = [migrations.RunPython(add_code_tools, migrations.RunPython.noop)]

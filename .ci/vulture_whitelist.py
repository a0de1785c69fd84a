# What vulture (the dead-code check in .ci/run) takes for unused but is not: click commands,
# dataclass fields read through asdict, MCP tools, hooks that frameworks call by name.
# Regenerate with: vulture cmat --min-confidence 60 --make-whitelist > .ci/vulture_whitelist.py
__getattr__  # unused function (cmat/__init__.py:12)
max_tokens  # unused variable (cmat/catalog/schema.py:97)
context_window  # unused variable (cmat/catalog/schema.py:98)
released  # unused variable (cmat/catalog/schema.py:100)
_.format_commands  # unused method (cmat/cli/__init__.py:65)
set_budget  # unused function (cmat/cli/budget.py:124)
unset_budget  # unused function (cmat/cli/budget.py:188)
show  # unused function (cmat/cli/budget.py:208)
list_alerts  # unused function (cmat/cli/budget.py:448)
deliver  # unused function (cmat/cli/budget.py:468)
show  # unused function (cmat/cli/costs.py:116)
dashboard  # unused function (cmat/cli/dashboard.py:12)
mcp  # unused function (cmat/cli/live.py:76)
list_models  # unused function (cmat/cli/models.py:52)
show  # unused function (cmat/cli/models.py:89)
list_tasks  # unused function (cmat/cli/queue.py:65)
show  # unused function (cmat/cli/queue.py:91)
monthly  # unused variable (cmat/cli/report.py:377)
weekly  # unused variable (cmat/cli/report.py:377)
claude  # unused variable (cmat/cli/report.py): `cmat claude daily`, imported by name (cli/__init__.py)
files_gone  # unused variable (cmat/ingest.py:69)
_.files_gone  # unused attribute (cmat/ingest.py:193)
samples  # unused variable (cmat/insight/estimate.py:140)
get_task_cost  # unused function (cmat/mcp_server.py:42)
get_enhancement_cost  # unused function (cmat/mcp_server.py:47)
get_cost_report  # unused function (cmat/mcp_server.py:58)
get_budget_status  # unused function (cmat/mcp_server.py:78)
_.collect  # unused method (cmat/metrics.py:62)
rejected  # unused variable (cmat/team/sync.py:55)
_.rejected  # unused attribute (cmat/team/sync.py:177)
_.can_proceed  # unused method (cmat/tracker.py:116)
daemon_threads  # unused variable (cmat/web.py:24)
request_queue_size  # unused variable (cmat/web.py:25)
_.log_message  # unused method (cmat/web.py:42)
layer_of  # unused function (cmat/layers.py:31): tests/test_architecture.py reads the layers
exit_codes  # unused function (cmat/errors.py:101): tests/cli_reference.py writes docs/cli.md's table from it
strict  # unused variable (cmat/claude/statuscache.py): read by the C JSON scanner
object_hook  # unused variable (cmat/claude/statuscache.py): read by the C JSON scanner
object_pairs_hook  # unused variable (cmat/claude/statuscache.py): read by the C JSON scanner
parse_float  # unused variable (cmat/claude/statuscache.py): read by the C JSON scanner
parse_int  # unused variable (cmat/claude/statuscache.py): read by the C JSON scanner
parse_constant  # unused variable (cmat/claude/statuscache.py): read by the C JSON scanner

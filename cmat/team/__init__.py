"""The team ledger on PostgreSQL: every machine's and every developer's spend in one place.

schema.py (tables and migrations), connect.py (the database named by --to, team.url or
CMAT_TEAM_URL), sync.py (`cmat sync`), reports.py (team reports, server-side), budgets.py
(team budgets, checked locally against what the last sync cached). psycopg is an optional
extra (cmat.extras says how to install it).
"""

"""The local web dashboard and its JSON API (server.py); the page in static/."""

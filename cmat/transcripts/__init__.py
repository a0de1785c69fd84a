"""Claude Code transcripts -> usage records, one per API request.

    files.py       where transcripts are, which belong to a session, opening one safely
    decode.py      one line -> a usage record (the reference rules); fastdecode.py, faster
    reader.py      a byte range of one file -> its records (the hot path)
    parallel.py    many ranges at once, in worker processes
    session.py     a session read whole, without the ledger
"""

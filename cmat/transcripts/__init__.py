"""Claude Code transcripts -> usage records, one per API request.

    files.py       where transcripts are, which belong to a session, opening one safely
    decode.py      one line -> a usage record (the reference rules); fastdecode.py, faster
    scanner.py     the compiled scanner (_scan.c): a chunk's usage lines read in C
    reader.py      a byte range of one file -> its records (the hot path)
    parallel.py    many ranges at once, in worker processes
    session.py     a session read whole, without the ledger
"""

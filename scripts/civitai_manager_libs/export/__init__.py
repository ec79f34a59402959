"""Training sets and big crawls: ``captions`` (prompt -> training caption), ``source`` (what an
export reads: the archive and the files), ``writers`` (captions / imagefolder / jsonl layouts),
``run`` (one export), ``listing`` (a listing without downloads, to Parquet or JSON Lines),
``library`` (search several folders, fill older folders' index)."""
